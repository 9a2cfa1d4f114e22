// One seeded generator family for everything random in nntrain.
//
// Every random draw derives from a 64-bit key built from the run's seed and a
// purpose (initialization of layer i, the shuffle of epoch e, the dropout mask
// of layer i at step s, ...). Nothing carries hidden state across purposes, so
// any rank can reproduce any other rank's draws and a resumed run draws
// exactly what an uninterrupted one would.

/// Purposes that separate independent random streams derived from one seed.
public enum RandomPurpose: UInt64, Sendable {
    case initialization = 1
    case shuffle = 2
    case dropout = 3
    case validationSplit = 4
    case syntheticData = 5
    case testing = 6
}

/// SplitMix64's finalizer: a bijective 64-bit mixer with full avalanche.
@inlinable @inline(__always)
public func mix64(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// Derives a stream key from a seed, a purpose and any number of indices.
@inlinable
public func randomKey(seed: UInt64, purpose: RandomPurpose, _ indices: UInt64...) -> UInt64 {
    var key = mix64(seed ^ mix64(purpose.rawValue))
    for index in indices { key = mix64(key ^ mix64(index &+ 0x632B_E59B_D9B4_E019)) }
    return key
}

/// Uniform Float in [0, 1) from the top 24 bits of a 64-bit value.
@inlinable @inline(__always)
public func unitFloat(_ bits: UInt64) -> Float {
    Float(bits >> 40) * (1.0 / 16_777_216.0)
}

/// Counter-based uniform draw: the `counter`-th number of the stream `key`.
/// Used where elements are drawn independently (dropout masks), on any device.
@inlinable @inline(__always)
public func counterUniform(key: UInt64, counter: UInt64) -> Float {
    unitFloat(mix64(key ^ (counter &* 0xD1B5_4A32_D192_ED03)))
}

/// A sequential generator (SplitMix64) for shuffles and initial weights.
public struct RandomStream: Sendable {
    /// The generator's whole state: a checkpoint can store it as one integer.
    public private(set) var state: UInt64

    /// A stream whose state starts at `key` (see `randomKey`).
    public init(key: UInt64) { state = key }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform Float in [0, 1).
    public mutating func nextUniform() -> Float { unitFloat(next()) }

    /// Uniform Double in [0, 1) with 53 random bits.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Uniform Float in [low, high).
    public mutating func nextUniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * nextUniform()
    }

    /// Standard normal draw (Box–Muller, one value per call).
    public mutating func nextNormal() -> Float {
        let u1 = max(nextDouble(), 1e-300)
        let u2 = nextDouble()
        return Float((-2.0 * _log(u1)).squareRoot() * _cos(2.0 * Double.pi * u2))
    }

    /// Uniform integer in 0..<bound (Lemire's nearly-divisionless method).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0)
        let b = UInt64(bound)
        var m = next().multipliedFullWidth(by: b)
        if m.low < b {
            let threshold = (0 &- b) % b
            while m.low < threshold { m = next().multipliedFullWidth(by: b) }
        }
        return Int(m.high)
    }

    /// A uniformly random permutation of 0..<count (Fisher–Yates).
    public mutating func permutation(_ count: Int) -> [Int32] {
        var result = (0..<Int32(count)).map { $0 }
        var i = count - 1
        while i > 0 {
            let j = nextInt(below: i + 1)
            result.swapAt(i, j)
            i -= 1
        }
        return result
    }
}

#if canImport(Glibc)
import Glibc
@usableFromInline func _log(_ x: Double) -> Double { Glibc.log(x) }
@usableFromInline func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Darwin
@usableFromInline func _log(_ x: Double) -> Double { Darwin.log(x) }
@usableFromInline func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif

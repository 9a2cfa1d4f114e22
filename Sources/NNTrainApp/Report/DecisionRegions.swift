// Decision regions of a network with two inputs, drawn as the TensorFlow
// Playground draws them: the plane coloured by the predicted class and its
// probability, the training points on top; and one small map per unit of the
// first layer, showing the line that unit draws (w·s(x) + b = 0, s the
// model's feature scaler).

import Foundation
import NNCore
import NNData
import NNTraining

/// An RGB colour, 0…255 per channel.
struct RGB {
    var r: Double, g: Double, b: Double

    init(hex: String) {
        let v = Int(hex.dropFirst(), radix: 16) ?? 0
        (r, g, b) = (Double(v >> 16 & 255), Double(v >> 8 & 255), Double(v & 255))
    }
    init(r: Double, g: Double, b: Double) { (self.r, self.g, self.b) = (r, g, b) }

    static let white = RGB(r: 255, g: 255, b: 255)

    /// `self` moved towards `other` by `t` (0…1).
    func mixed(with other: RGB, _ t: Double) -> RGB {
        let t = min(max(t, 0), 1)
        return RGB(r: r + (other.r - r) * t, g: g + (other.g - g) * t, b: b + (other.b - b) * t)
    }

    /// A diverging scale: −1 → `negative`, 0 → white, +1 → `positive`.
    static func diverging(_ v: Double, negative: RGB, positive: RGB, strength: Double = 0.85) -> RGB {
        v < 0 ? white.mixed(with: negative, -v * strength) : white.mixed(with: positive, v * strength)
    }
}

/// A rectangle of the input plane, in unscaled feature units.
struct PlaneBox {
    var x: (Double, Double), y: (Double, Double)

    /// The points' bounding box with a margin.
    init(points: Dataset) {
        var xs: [Double] = [], ys: [Double] = []
        for i in 0..<points.count {
            xs.append(Double(points.features[2 * i]))
            ys.append(Double(points.features[2 * i + 1]))
        }
        x = domain(xs, pad: 0.08)
        y = domain(ys, pad: 0.08)
    }

    /// Cell centres of an n × n grid, row 0 at the top (largest y), as a dataset.
    func grid(_ n: Int) -> Dataset {
        var features: [Float] = []
        features.reserveCapacity(2 * n * n)
        for row in 0..<n {
            let v = y.1 - (Double(row) + 0.5) / Double(n) * (y.1 - y.0)
            for column in 0..<n {
                features.append(Float(x.0 + (Double(column) + 0.5) / Double(n) * (x.1 - x.0)))
                features.append(Float(v))
            }
        }
        return Dataset(name: "grid", features: features, featureCount: 2, labels: [], labelWidth: 0)
    }
}

enum DecisionRegions {
    /// Grid cells per side of the main map and of each unit's map.
    static let cells = 80, unitCells = 40
    /// Most points drawn, and most first-layer units shown.
    static let maxPoints = 1500, maxUnits = 32

    /// Colours of the classes: the Playground's orange and blue for two.
    static func classColors(_ count: Int) -> [RGB] {
        (count <= 2 ? [Palette.orange, Palette.blue] : (0..<count).map(Palette.color)).map(RGB.init(hex:))
    }

    /// The section's body: the map with the points, a legend, and the first layer's units.
    static func html(model: LoadedModel, points: Dataset, modelLabel: String) -> String {
        let box = PlaneBox(points: points)
        let predictions = model.predict(box.grid(cells))
        let isClassifier = model.objective.isClassifier
        let classes = isClassifier ? max(model.objective.classCount, 2) : 0
        let names = (0..<classes).map { predictions.className($0) }
        let (pixels, valueRange) = regionPixels(predictions, classes: classes)
        let featureNames = model.snapshot.featureNames ?? ["x₁", "x₂"]
        var s = "<div class=\"regions-row\">"
        s += regionMap(png: PNG.rgb(width: cells, height: cells, pixels: pixels), box: box, points: points,
                       classes: classes, valueRange: valueRange, axisNames: featureNames)
        s += "<div class=\"regions-legend\">" + legend(names: names, valueRange: valueRange)
        s += "<p class=\"note\">Model: \(escapeHTML(modelLabel)). Background: the network's prediction on a \(cells)×\(cells) grid"
        s += isClassifier ? " (colour: predicted class; depth: its probability)." : " (colour: predicted value)."
        s += " Points: the training data\(points.count > maxPoints ? " (\(maxPoints) of \(points.count))" : "").</p></div></div>"
        s += units(model: model, box: box)
        return s
    }

    /// The colour of every grid cell, and for regression the range of predicted values.
    static func regionPixels(_ predictions: Predictions, classes: Int) -> ([RGB], (Double, Double)?) {
        let width = predictions.width, outputs = predictions.outputs
        if classes == 0 {
            let values = (0..<predictions.count).map { Double(outputs[$0 * width]) }
            let range = domain(values, pad: 0)
            let mid = (range.0 + range.1) / 2, half = (range.1 - range.0) / 2
            let colors = classColors(2)
            return (values.map { RGB.diverging(($0 - mid) / half, negative: colors[0], positive: colors[1]) }, range)
        }
        let colors = classColors(classes)
        let pixels = (0..<predictions.count).map { row -> RGB in
            if width == 1 {
                return RGB.diverging(2 * Double(outputs[row]) - 1, negative: colors[0], positive: colors[1])
            }
            let probabilities = outputs[row * width..<(row + 1) * width].map(Double.init)
            let best = probabilities.indices.max { probabilities[$0] < probabilities[$1] } ?? 0
            let confidence = (probabilities[best] - 1 / Double(width)) / (1 - 1 / Double(width))
            return RGB.white.mixed(with: colors[best % colors.count], 0.15 + 0.7 * confidence)
        }
        return (pixels, nil)
    }

    /// The map: the grid image, axes, and the points.
    static func regionMap(png: [UInt8], box: PlaneBox, points: Dataset, classes: Int, valueRange: (Double, Double)?,
                          axisNames: [String]) -> String {
        var frame = ChartFrame(width: 440, height: 440, left: 56, right: 12, top: 12, bottom: 44)
        frame.xDomain = box.x
        frame.yDomain = box.y
        var s = "<svg id=\"decision-regions\" class=\"chart square\" viewBox=\"0 0 440 440\" role=\"img\" aria-label=\"decision regions\">"
        s += "<image x=\"\(px(frame.left))\" y=\"\(px(frame.top))\" width=\"\(px(frame.plotWidth))\" height=\"\(px(frame.plotHeight))\" preserveAspectRatio=\"none\" href=\"data:image/png;base64,\(Data(png).base64EncodedString())\"/>"
        s += frame.axes(xLabel: axisNames[0], yLabel: axisNames[1], grid: false)
        s += "<g class=\"points\">"
        let radius = points.count < 50 ? 7.0 : 3.2
        let stride = max(1, (points.count + maxPoints - 1) / maxPoints)
        let colors = classColors(max(classes, 2))
        for i in Swift.stride(from: 0, to: points.count, by: stride) {
            let fill = pointColor(points, i, classes: classes, colors: colors, valueRange: valueRange)
            s += "<circle cx=\"\(px(frame.x(Double(points.features[2 * i]))))\" cy=\"\(px(frame.y(Double(points.features[2 * i + 1]))))\" r=\"\(px(radius))\" fill=\"\(fill)\"/>"
        }
        return s + "</g></svg>"
    }

    /// A training point's colour: its class, or its target on the regression scale.
    static func pointColor(_ points: Dataset, _ i: Int, classes: Int, colors: [RGB], valueRange: (Double, Double)?) -> String {
        let width = points.labelWidth
        guard width > 0 else { return Palette.grey }
        let label = points.labels[i * width..<(i + 1) * width]
        if classes == 0 {
            let range = valueRange ?? (0, 1)
            let v = (Double(label[label.startIndex]) - (range.0 + range.1) / 2) / max((range.1 - range.0) / 2, 1e-12)
            return hex(RGB.diverging(min(max(v, -1), 1), negative: colors[0], positive: colors[1], strength: 1))
        }
        let k = width == 1 ? Int(label[label.startIndex]) : (label.indices.max { label[$0] < label[$1] }.map { $0 - label.startIndex } ?? 0)
        return hex(colors[min(max(k, 0), colors.count - 1)])
    }

    static func hex(_ c: RGB) -> String {
        let digits = Array("0123456789ABCDEF")
        var s = "#"
        for v in [c.r, c.g, c.b] {
            let byte = Int(min(max(v.rounded(), 0), 255))
            s.append(digits[byte >> 4])
            s.append(digits[byte & 15])
        }
        return s
    }

    static func legend(names: [String], valueRange: (Double, Double)?) -> String {
        if let range = valueRange {
            let colors = classColors(2)
            return "<ul class=\"key\"><li><span class=\"swatch\" style=\"background:\(hex(colors[0]))\"></span>\(formatNumber(range.0)) (lowest prediction)</li>"
                + "<li><span class=\"swatch\" style=\"background:\(hex(colors[1]))\"></span>\(formatNumber(range.1)) (highest)</li></ul>"
        }
        let colors = classColors(names.count)
        return "<ul class=\"key\">" + names.enumerated().map { k, name in
            "<li><span class=\"swatch\" style=\"background:\(hex(colors[k]))\"></span>\(escapeHTML(name))</li>"
        }.joined() + "</ul>"
    }
}

// MARK: - The first layer's units

extension DecisionRegions {
    /// One small map per unit of the first dense layer: tanh of its
    /// pre-activation z = w·s(x) + b (orange below zero, blue above), and the
    /// line z = 0.
    static func units(model: LoadedModel, box: PlaneBox) -> String {
        let snapshot = model.snapshot
        guard let weight = snapshot.layout.first(where: { $0.name == "layers.0.weight" }),
              let bias = snapshot.layout.first(where: { $0.name == "layers.0.bias" }), weight.shape.count == 2 else { return "" }
        let units = weight.shape[0], activation = model.snapshot.config.model.denseLayers.first?.activation.name ?? "?"
        let p = snapshot.parameters
        var s = "<h3>First-layer units</h3><p class=\"note\">Each of the first layer's \(units) units (\(escapeHTML(activation))) splits the plane along the line w·s(x) + b = 0, s being the model's feature scaling; the network's regions above are built from these half-planes. Colour: tanh(w·s(x) + b).\(units > maxUnits ? " The first \(maxUnits) are shown." : "")</p>"
        s += "<div id=\"unit-regions\" class=\"multiples\">"
        for j in 0..<min(units, maxUnits) {
            let w = (Double(p[weight.offset + 2 * j]), Double(p[weight.offset + 2 * j + 1]))
            let line = rawLine(w: w, b: Double(p[bias.offset + j]), scaler: snapshot.scaler)
            s += unitTile(j, line: line, box: box)
        }
        return s + "</div>"
    }

    /// z(x, y) = a·x + c·y + d in unscaled coordinates (the scaler is affine per feature).
    static func rawLine(w: (Double, Double), b: Double, scaler: FeatureScaler) -> (a: Double, c: Double, d: Double) {
        let scaled = scaler.method != .none && scaler.offsets.count == 2
        let (o0, o1) = scaled ? (Double(scaler.offsets[0]), Double(scaler.offsets[1])) : (0, 0)
        let (f0, f1) = scaled ? (Double(scaler.factors[0]), Double(scaler.factors[1])) : (1, 1)
        let a = w.0 * f0, c = w.1 * f1
        return (a, c, b - a * o0 - c * o1)
    }

    static func unitTile(_ j: Int, line: (a: Double, c: Double, d: Double), box: PlaneBox) -> String {
        let n = unitCells, colors = classColors(2)
        var pixels: [RGB] = []
        pixels.reserveCapacity(n * n)
        let grid = box.grid(n).features
        for i in 0..<n * n {
            let z = line.a * Double(grid[2 * i]) + line.c * Double(grid[2 * i + 1]) + line.d
            pixels.append(RGB.diverging(tanh(z), negative: colors[0], positive: colors[1]))
        }
        let size = 96.0
        var s = "<svg class=\"unit\" viewBox=\"0 0 \(px(size)) \(px(size + 14))\" role=\"img\" aria-label=\"unit \(j)\">"
        s += "<image x=\"0\" y=\"0\" width=\"\(px(size))\" height=\"\(px(size))\" preserveAspectRatio=\"none\" href=\"data:image/png;base64,\(Data(PNG.rgb(width: n, height: n, pixels: pixels)).base64EncodedString())\"/>"
        if let (p, q) = clip(line, box) {
            let fx = { (x: Double) in (x - box.x.0) / (box.x.1 - box.x.0) * size }
            let fy = { (y: Double) in (box.y.1 - y) / (box.y.1 - box.y.0) * size }
            s += "<line x1=\"\(px(fx(p.0)))\" y1=\"\(px(fy(p.1)))\" x2=\"\(px(fx(q.0)))\" y2=\"\(px(fy(q.1)))\" stroke=\"#222\" stroke-width=\"1.2\"/>"
        }
        s += "<rect class=\"frame\" x=\"0\" y=\"0\" width=\"\(px(size))\" height=\"\(px(size))\"/>"
        s += "<text class=\"tick\" x=\"\(px(size / 2))\" y=\"\(px(size + 11))\" text-anchor=\"middle\">unit \(j)</text>"
        return s + "</svg>"
    }

    /// Where the line a·x + c·y + d = 0 crosses the box's edges, if it does.
    static func clip(_ line: (a: Double, c: Double, d: Double), _ box: PlaneBox) -> ((Double, Double), (Double, Double))? {
        var hits: [(Double, Double)] = []
        if line.c != 0 {
            for x in [box.x.0, box.x.1] {
                let y = -(line.a * x + line.d) / line.c
                if y >= box.y.0 && y <= box.y.1 { hits.append((x, y)) }
            }
        }
        if line.a != 0 {
            for y in [box.y.0, box.y.1] {
                let x = -(line.c * y + line.d) / line.a
                if x >= box.x.0 && x <= box.x.1 { hits.append((x, y)) }
            }
        }
        guard let first = hits.first, let second = hits.dropFirst().first(where: { abs($0.0 - first.0) + abs($0.1 - first.1) > 1e-12 }) else { return nil }
        return (first, second)
    }
}

// MARK: - PNG

/// A minimal PNG writer: 8-bit RGB, no interlace, one zlib-compressed IDAT.
enum PNG {
    static func rgb(width: Int, height: Int, pixels: [RGB]) -> [UInt8] {
        var raw: [UInt8] = []
        raw.reserveCapacity(height * (1 + 3 * width))
        for row in 0..<height {
            raw.append(0)  // filter: none
            for p in pixels[row * width..<(row + 1) * width] {
                raw += [UInt8(min(max(p.r.rounded(), 0), 255)), UInt8(min(max(p.g.rounded(), 0), 255)), UInt8(min(max(p.b.rounded(), 0), 255))]
            }
        }
        var header: [UInt8] = bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        header += [8, 2, 0, 0, 0]  // depth 8, colour type RGB, deflate, adaptive filters, no interlace
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += chunk("IHDR", header) + chunk("IDAT", ZlibStream.compress(raw)) + chunk("IEND", [])
        return png
    }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return bigEndian(UInt32(data.count)) + body + bigEndian(ZlibStream.crc32(body))
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
}

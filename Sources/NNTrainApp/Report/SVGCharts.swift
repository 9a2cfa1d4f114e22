// Inline SVG charts for the report: line charts with axes, ticks, legends and
// vertical markers; histograms; a heat-map table. Pure string building.

import Foundation

/// Colour-blind-safe colours (Okabe and Ito).
enum Palette {
    static let blue = "#0072B2", orange = "#E69F00", vermillion = "#D55E00", green = "#009E73"
    static let sky = "#56B4E9", purple = "#CC79A7", yellow = "#F0E442", grey = "#555555"
    /// Colours for series or classes, in order.
    static let cycle = [blue, orange, green, vermillion, purple, sky, yellow, grey]
    static func color(_ index: Int) -> String { cycle[index % cycle.count] }
}

/// Escapes text for HTML and SVG.
func escapeHTML(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.count)
    for c in text {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(c)
        }
    }
    return out
}

/// A number for a label: up to 4 significant digits, no trailing noise.
func formatNumber(_ value: Double) -> String {
    if value == 0 || !value.isFinite { return value == 0 ? "0" : String(value) }
    let magnitude = abs(value)
    if magnitude >= 1e5 || magnitude < 1e-3 { return String(format: "%.3g", value) }
    // k / 10ⁿ for an integer k is the double nearest that decimal, whose
    // shortest form is the decimal itself (and faster than String(format:)).
    let digits = 3 - Int(floor(log10(magnitude)))
    let rounded = digits > 0 ? (value * pow(10, Double(digits))).rounded() / pow(10, Double(digits)) : value.rounded()
    let text = String(rounded)
    return text.hasSuffix(".0") ? String(text.dropLast(2)) : text
}

/// A tick label: thousands as `k`, millions as `M`.
func formatTick(_ value: Double) -> String {
    let magnitude = abs(value)
    if magnitude >= 1e6 { return formatNumber(value / 1e6) + "M" }
    if magnitude >= 1e4 { return formatNumber(value / 1e3) + "k" }
    return formatNumber(value)
}

/// A coordinate with at most two decimals (built by hand: `String(format:)`
/// is slow, and a page has thousands of coordinates).
func px(_ value: Double) -> String {
    guard value.isFinite, abs(value) < 1e12 else { return "0" }
    let hundredths = Int((value * 100).rounded())
    let whole = String(abs(hundredths) / 100), fraction = abs(hundredths) % 100
    let sign = hundredths < 0 ? "-" : ""
    if fraction == 0 { return sign + whole }
    return sign + whole + (fraction % 10 == 0 ? "." + String(fraction / 10) : (fraction < 10 ? ".0" : ".") + String(fraction))
}

/// Round tick values covering [low, high], about `count` of them.
func niceTicks(_ low: Double, _ high: Double, count: Int = 5) -> [Double] {
    guard high > low, low.isFinite, high.isFinite else { return [low] }
    let raw = (high - low) / Double(max(count, 1))
    let power = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 2.5, 5, 10].map { $0 * power }.first { $0 >= raw } ?? raw
    var ticks: [Double] = []
    var t = ceil(low / step - 1e-9) * step
    while t <= high + step * 1e-9 {
        ticks.append(abs(t) < step * 1e-9 ? 0 : t)
        t += step
    }
    return ticks
}

/// A data range widened to be drawable, optionally padded.
func domain(_ values: [Double], pad: Double = 0.05, includeZero: Bool = false) -> (Double, Double) {
    var low = values.min() ?? 0, high = values.max() ?? 1
    if includeZero { low = min(low, 0); high = max(high, 0) }
    if high - low <= 1e-9 * max(abs(high), 1e-30) {
        let spread = high == 0 ? 1 : abs(high) * 0.2
        (low, high) = (low - spread, high + spread)
    }
    let margin = (high - low) * pad
    return (includeZero && low == 0 ? 0 : low - margin, high + margin)
}

/// One line of a chart.
struct Series {
    var name: String
    var color: String
    var points: [(x: Double, y: Double)]
    var dashed = false
}

/// A vertical line at `x`, labelled.
struct Marker {
    var x: Double
    var label: String
    var color: String
    /// A class for tests and styles, e.g. `best-val`.
    var kind: String
}

/// The frame of a chart: size, margins, and the mapping from data to pixels.
struct ChartFrame {
    var width = 560.0, height = 280.0
    var left = 72.0, right = 16.0, top = 30.0, bottom = 44.0
    var xDomain: (Double, Double) = (0, 1), yDomain: (Double, Double) = (0, 1)

    var plotWidth: Double { width - left - right }
    var plotHeight: Double { height - top - bottom }
    func x(_ v: Double) -> Double { left + (v - xDomain.0) / (xDomain.1 - xDomain.0) * plotWidth }
    func y(_ v: Double) -> Double { top + plotHeight - (v - yDomain.0) / (yDomain.1 - yDomain.0) * plotHeight }

    /// Axes with ticks, grid lines and labels.
    func axes(xLabel: String, yLabel: String, xTicks: [Double]? = nil, yTicks: [Double]? = nil,
              xFormat: (Double) -> String = formatTick, grid: Bool = true) -> String {
        var s = "<g class=\"axes\">"
        for t in yTicks ?? niceTicks(yDomain.0, yDomain.1) where t >= yDomain.0 && t <= yDomain.1 {
            if !grid {
                s += "<line class=\"tick-mark\" x1=\"\(px(left - 5))\" x2=\"\(px(left))\" y1=\"\(px(y(t)))\" y2=\"\(px(y(t)))\"/>"
            } else {
                s += "<line class=\"grid\" x1=\"\(px(left))\" x2=\"\(px(left + plotWidth))\" y1=\"\(px(y(t)))\" y2=\"\(px(y(t)))\"/>"
            }
            s += "<text class=\"tick\" x=\"\(px(left - 6))\" y=\"\(px(y(t) + 4))\" text-anchor=\"end\">\(formatTick(t))</text>"
        }
        for t in xTicks ?? niceTicks(xDomain.0, xDomain.1, count: 6) where t >= xDomain.0 && t <= xDomain.1 {
            s += "<line class=\"tick-mark\" x1=\"\(px(x(t)))\" x2=\"\(px(x(t)))\" y1=\"\(px(top + plotHeight))\" y2=\"\(px(top + plotHeight + 5))\"/>"
            s += "<text class=\"tick\" x=\"\(px(x(t)))\" y=\"\(px(top + plotHeight + 18))\" text-anchor=\"middle\">\(xFormat(t))</text>"
        }
        s += "<rect class=\"frame\" x=\"\(px(left))\" y=\"\(px(top))\" width=\"\(px(plotWidth))\" height=\"\(px(plotHeight))\"/>"
        s += "<text class=\"axis-label\" x=\"\(px(left + plotWidth / 2))\" y=\"\(px(height - 6))\" text-anchor=\"middle\">\(escapeHTML(xLabel))</text>"
        s += "<text class=\"axis-label\" transform=\"translate(14 \(px(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(escapeHTML(yLabel))</text>"
        return s + "</g>"
    }
}

/// A line chart of several series over a shared x axis.
struct LineChart {
    var id: String
    var title: String
    var xLabel: String, yLabel: String
    var series: [Series]
    var markers: [Marker] = []
    var frame = ChartFrame()
    /// Integer ticks only on the x axis (epochs).
    var integerX = false
    /// The y axis starts at zero.
    var yFromZero = false

    func svg() -> String {
        var frame = frame
        let hasLegend = series.count > 1 || !markers.isEmpty
        if hasLegend { frame.top += 16; frame.height += 16 }
        let points = series.flatMap(\.points)
        let xs = points.map(\.x) + markers.map(\.x), ys = points.map(\.y)
        frame.xDomain = domain(xs, pad: 0.02)
        frame.yDomain = domain(ys, pad: 0.08, includeZero: yFromZero)
        var xTicks = niceTicks(frame.xDomain.0, frame.xDomain.1, count: 6)
        if integerX { xTicks = xTicks.filter { $0 == $0.rounded() } }
        var s = "<svg id=\"\(id)\" class=\"chart\" viewBox=\"0 0 \(px(frame.width)) \(px(frame.height))\" role=\"img\" aria-label=\"\(escapeHTML(title))\">"
        s += "<text class=\"chart-title\" x=\"\(px(frame.left))\" y=\"18\">\(escapeHTML(title))</text>"
        s += frame.axes(xLabel: xLabel, yLabel: yLabel, xTicks: xTicks)
        for marker in markers { s += markerSVG(marker, frame) }
        for line in series where !line.points.isEmpty { s += seriesSVG(line, frame) }
        if hasLegend { s += legend(frame) }
        return s + "</svg>"
    }

    private func seriesSVG(_ line: Series, _ frame: ChartFrame) -> String {
        let path = line.points.map { "\(px(frame.x($0.x))),\(px(frame.y($0.y)))" }.joined(separator: " ")
        var s = "<g class=\"series\" data-name=\"\(escapeHTML(line.name))\">"
        s += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\"\(line.dashed ? " stroke-dasharray=\"5 3\"" : "") points=\"\(path)\"/>"
        if line.points.count <= 60 {
            for p in line.points {
                s += "<circle cx=\"\(px(frame.x(p.x)))\" cy=\"\(px(frame.y(p.y)))\" r=\"2.5\" fill=\"\(line.color)\"/>"
            }
        }
        return s + "</g>"
    }

    private func markerSVG(_ marker: Marker, _ frame: ChartFrame) -> String {
        let x = px(frame.x(marker.x))
        return "<g class=\"marker \(marker.kind)\" data-x=\"\(formatNumber(marker.x))\">"
            + "<line x1=\"\(x)\" x2=\"\(x)\" y1=\"\(px(frame.top))\" y2=\"\(px(frame.top + frame.plotHeight))\" stroke=\"\(marker.color)\" stroke-width=\"1.5\" stroke-dasharray=\"4 3\"/>"
            + "<title>\(escapeHTML(marker.label))</title></g>"
    }

    /// Series names and marker labels in one row above the plot, right-aligned.
    private func legend(_ frame: ChartFrame) -> String {
        var entries: [(String, String, Bool)] = series.map { ($0.name, $0.color, $0.dashed) }
        entries += markers.map { ($0.label, $0.color, true) }
        var s = "<g class=\"legend\">"
        var x = frame.left + frame.plotWidth
        let y = frame.top - 9
        for (name, color, dashed) in entries.reversed() {
            x -= 6.2 * Double(name.count)
            s += "<text class=\"legend-text\" x=\"\(px(x))\" y=\"\(px(y))\">\(escapeHTML(name))</text>"
            s += "<line x1=\"\(px(x - 22))\" x2=\"\(px(x - 4))\" y1=\"\(px(y - 4))\" y2=\"\(px(y - 4))\" stroke=\"\(color)\" stroke-width=\"2\"\(dashed ? " stroke-dasharray=\"4 3\"" : "")/>"
            x -= 36
        }
        return s + "</g>"
    }
}

/// A histogram of counts over bucket edges.
struct Histogram {
    var id: String
    var title: String
    var xLabel: String
    var edges: [Double]
    var counts: [Int]
    var color: String
    /// Shared x range, so one layer's histograms compare across epochs.
    var xDomain: (Double, Double)?

    func svg() -> String {
        var frame = ChartFrame(width: 250, height: 160, left: 40, right: 8, top: 22, bottom: 42)
        frame.xDomain = xDomain ?? domain(edges, pad: 0)
        frame.yDomain = (0, Double(max(counts.max() ?? 1, 1)) * 1.08)
        var s = "<svg id=\"\(id)\" class=\"histogram\" viewBox=\"0 0 250 160\" role=\"img\" aria-label=\"\(escapeHTML(title))\">"
        s += "<text class=\"chart-title small\" x=\"\(px(frame.left))\" y=\"14\">\(escapeHTML(title))</text>"
        s += frame.axes(xLabel: xLabel, yLabel: "count", yTicks: niceTicks(frame.yDomain.0, frame.yDomain.1, count: 3))
        for (i, count) in counts.enumerated() where i + 1 < edges.count && count > 0 {
            let x0 = frame.x(edges[i]), x1 = frame.x(edges[i + 1])
            s += "<rect x=\"\(px(x0))\" y=\"\(px(frame.y(Double(count))))\" width=\"\(px(max(x1 - x0 - 0.5, 0.5)))\" height=\"\(px(frame.y(0) - frame.y(Double(count))))\" fill=\"\(color)\"><title>[\(formatNumber(edges[i])), \(formatNumber(edges[i + 1]))): \(count)</title></rect>"
        }
        return s + "</svg>"
    }
}

// The report's chart sections: curves, learning rate, histograms, confusion
// matrix, throughput.

import Foundation

extension ReportPage {
    /// The epoch with the lowest validation loss, and that loss.
    var bestValidation: (epoch: Int, loss: Double)? {
        records.epochs.compactMap { e in e.valLoss.map { (e.epoch, $0) } }.min { $0.1 < $1.1 }
    }

    /// Training and validation curves of every metric, with the validation
    /// minimum and the early stop marked.
    func curvesSection() -> String {
        let epochs = records.epochs
        guard !epochs.isEmpty else { return Self.section("curves", "Training curves", Self.note("No epoch has ended yet.")) }
        var markers: [Marker] = []
        if let best = bestValidation {
            markers.append(Marker(x: Double(best.epoch), label: "lowest val_loss (epoch \(best.epoch))", color: Palette.green, kind: "best-val"))
        }
        if let stopped = records.results?.earlyStopping?.stoppedEpoch {
            markers.append(Marker(x: Double(stopped), label: "early stop (epoch \(stopped))", color: Palette.vermillion, kind: "early-stop"))
        }
        let names = records.isClassifier ? ["loss", "accuracy"] : ["loss", "mse", "mae"]
        var charts = ""
        for name in names {
            let train = epochs.compactMap { e in e.metric(name, validation: false).map { (Double(e.epoch), $0) } }
            let validation = epochs.compactMap { e in e.metric(name, validation: true).map { (Double(e.epoch), $0) } }
            guard !train.isEmpty || !validation.isEmpty else { continue }
            var series = [Series(name: "training", color: Palette.blue, points: train)]
            if !validation.isEmpty { series.append(Series(name: "validation", color: Palette.orange, points: validation, dashed: true)) }
            charts += LineChart(id: "\(name)-curve", title: name, xLabel: "epoch", yLabel: name, series: series,
                                markers: markers, integerX: true).svg()
        }
        return Self.section("curves", "Training curves", "<div class=\"charts\">\(charts)</div>" + overfittingNote())
    }

    /// A sentence on where validation loss turned, if it did.
    private func overfittingNote() -> String {
        guard let best = bestValidation, let last = records.epochs.last else {
            return Self.note("There is no validation split, so overfitting cannot be seen here; set data.validation_split to watch for it.")
        }
        var text = "Validation loss was lowest at epoch \(best.epoch) (\(formatNumber(best.loss)))."
        if let now = last.valLoss, last.epoch > best.epoch {
            let rise = (now - best.loss) / max(abs(best.loss), 1e-12) * 100
            text += " By epoch \(last.epoch) it is \(formatNumber(now)) (\(String(format: "%+.1f", rise))%)"
            // A rise over a few epochs, not one noisy epoch, is overfitting.
            text += rise > 5 && last.epoch - best.epoch >= 3
                ? ": from there on the model fits its training data better than new data (overfitting)." : "."
        }
        if let stopping = records.results?.earlyStopping, let stopped = stopping.stoppedEpoch {
            text += " Early stopping (monitoring \(stopping.monitor ?? "val_loss")) stopped at epoch \(stopped)"
            text += stopping.restoredBestWeights == true ? " and restored the weights of epoch \(stopping.bestEpoch.map(String.init) ?? "?")." : "."
        }
        return Self.note(text)
    }

    /// The learning rate at the end of each epoch over optimizer steps, and
    /// the whole run's planned schedule when the steps per epoch are known.
    func learningRateSection() -> String {
        let points = records.epochs.compactMap { e in e.learningRate.map { (Double(e.globalStep ?? e.epoch), $0) } }
        guard !points.isEmpty else { return "" }
        let xLabel = records.epochs.first?.globalStep != nil ? "optimizer step" : "epoch"
        var series = [Series(name: "at each epoch's end", color: Palette.purple, points: points)]
        if let planned = plannedSchedule() { series.insert(planned, at: 0) }
        let chart = LineChart(id: "learning-rate-curve", title: "learning rate", xLabel: xLabel, yLabel: "learning rate",
                              series: series, yFromZero: true)
        return Self.section("learning-rate", "Learning rate", "<div class=\"charts\">\(chart.svg())</div>")
    }

    /// The configured schedule over every step of the run, from the steps the first epoch took.
    private func plannedSchedule() -> Series? {
        guard let config = records.config, let first = records.epochs.first, first.epoch == 1,
              let steps = first.globalStep, steps > 0, config.training.epochs >= records.epochs.count else { return nil }
        let (total, overflow) = steps.multipliedReportingOverflow(by: config.training.epochs)
        guard !overflow, total < 1 << 50 else { return nil }
        let schedule = config.optimizer.learningRateSchedule(totalSteps: total)
        let samples = min(total, 200)
        let points = (0...samples).map { i -> (x: Double, y: Double) in
            let step = total * i / samples
            return (Double(step), Double(schedule.rate(completedSteps: step)))
        }
        return Series(name: "schedule", color: Palette.grey, points: points, dashed: true)
    }

    /// Samples per second per epoch; with several ranks, each rank's share of time waiting in the allreduce.
    func throughputSection() -> String {
        let epochs = records.epochs
        let points = epochs.compactMap { e in e.samplesPerSecond.map { (Double(e.epoch), $0) } }
        guard !points.isEmpty else { return "" }
        var charts = LineChart(id: "throughput-curve", title: "training throughput", xLabel: "epoch", yLabel: "samples / s",
                               series: [Series(name: "samples / s", color: Palette.blue, points: points)], integerX: true).svg()
        let ranks = epochs.map { $0.rankStepMs?.count ?? 0 }.max() ?? 0
        var table = ""
        if ranks > 1 {
            let series = (0..<ranks).map { r in
                Series(name: "rank \(r)", color: Palette.color(r), points: epochs.compactMap { e in
                    Self.share(e, rank: r).map { (Double(e.epoch), $0 * 100) }
                })
            }
            charts += LineChart(id: "rank-share-curve", title: "time waiting in the allreduce, per rank", xLabel: "epoch",
                                yLabel: "% of step time", series: series, integerX: true).svg()
            table = rankTable(ranks)
        }
        return Self.section("throughput", "Throughput", "<div class=\"charts\">\(charts)</div>" + table)
    }

    /// wait / (compute + wait) of one rank in one epoch.
    static func share(_ e: EpochLine, rank: Int) -> Double? {
        guard let steps = e.rankStepMs, let waits = e.rankWaitMs, rank < steps.count, rank < waits.count,
              let step = steps[rank], let wait = waits[rank], step + wait > 0 else { return nil }
        return wait / (step + wait)
    }

    private func rankTable(_ ranks: Int) -> String {
        guard let last = records.epochs.last else { return "" }
        let hosts = records.info?.hosts ?? []
        var s = "<table id=\"rank-table\" class=\"metrics\"><caption>Epoch \(last.epoch), per rank (ms per step)</caption><thead><tr><th>rank</th><th>host</th><th>compute</th><th>allreduce wait</th><th>share</th></tr></thead><tbody>"
        for r in 0..<ranks {
            let step = last.rankStepMs.flatMap { r < $0.count ? $0[r] : nil }, wait = last.rankWaitMs.flatMap { r < $0.count ? $0[r] : nil }
            s += "<tr><td>\(r)</td><td>\(escapeHTML(r < hosts.count ? hosts[r] : "–"))</td><td>\(step.map(formatNumber) ?? "–")</td><td>\(wait.map(formatNumber) ?? "–")</td>"
            s += "<td>\(Self.share(last, rank: r).map { String(format: "%.1f%%", $0 * 100) } ?? "–")</td></tr>"
        }
        s += "</tbody></table>"
        if let bare = last.allreduceMs, let call = last.allreduceCallMsPerStep {
            s += Self.note("Allreduce alone (timed after a barrier): \(formatNumber(bare)) ms; the call as a step sees it: \(formatNumber(call)) ms per step.")
        }
        return s
    }
}

// MARK: - Histograms

extension ReportPage {
    /// Up to `count` sampled epochs, evenly spread, first and last included.
    static func chosen(_ lines: [HistogramLine], count: Int = 4) -> [HistogramLine] {
        guard lines.count > count else { return lines }
        let picks = (0..<count).map { Int((Double($0) * Double(lines.count - 1) / Double(count - 1)).rounded()) }
        return Array(Set(picks)).sorted().map { lines[$0] }
    }

    /// Per layer, histograms of weights and of log10 |gradient| at a few epochs.
    func histogramSection() -> String {
        guard let lines = records.histograms else { return "" }
        guard !lines.isEmpty else { return Self.section("histograms", "Weights and gradients", Self.note("No epoch has been sampled yet.")) }
        let picked = Self.chosen(lines)
        var s = Self.note("Per dense layer, at epochs \(picked.map { String($0.epoch) }.joined(separator: ", ")): the weights, and the magnitudes of the last step's gradients on a log scale. Gradients that shrink towards tiny powers of ten layer after layer vanish; ones that grow explode.")
        s += "<div id=\"histograms\">"
        let layerNames = picked.last?.layers.map(\.name) ?? []
        for (index, name) in layerNames.enumerated() {
            let layers = picked.map { line in (line.epoch, line.layers.first { $0.name == name }) }
            s += "<h3>\(escapeHTML(name))</h3><div class=\"multiples\">"
            s += histogramRow(layers.map { ($0.0, $0.1?.weight) }, id: "hist-weight-\(index)", label: "weight", color: Palette.blue)
            s += "</div><div class=\"multiples\">"
            s += histogramRow(layers.map { ($0.0, $0.1?.gradientMagnitude) }, id: "hist-gradient-\(index)", label: "log₁₀ |gradient|", color: Palette.vermillion)
            s += "</div>"
        }
        return Self.section("histograms", "Weights and gradients", s + "</div>")
    }

    private func histogramRow(_ items: [(Int, HistogramLine.Buckets?)], id: String, label: String, color: String) -> String {
        let buckets = items.compactMap(\.1).filter { $0.edges.count >= 2 }
        guard !buckets.isEmpty else { return Self.note("no \(label) histograms") }
        let shared = domain(buckets.flatMap { [$0.edges.first!, $0.edges.last!] }, pad: 0.02)
        return items.compactMap { epoch, b in
            guard let b, b.edges.count >= 2 else { return nil }
            let zeros = b.zeros.map { $0 > 0 ? " (\($0) zero)" : "" } ?? ""
            return Histogram(id: "\(id)-e\(epoch)", title: "\(label), epoch \(epoch)\(zeros)", xLabel: label, edges: b.edges,
                             counts: b.counts, color: color, xDomain: shared).svg()
        }.joined()
    }
}

// MARK: - Confusion matrix

extension ReportPage {
    func confusionSection() -> String {
        guard records.isClassifier else { return "" }
        guard let matrix = records.results?.confusionMatrix else {
            let why = records.results == nil ? "it appears when the run finishes" : "the run has no test set"
            return Self.section("confusion", "Confusion matrix (test set)", Self.note("No confusion matrix: \(why)."))
        }
        let k = matrix.classes.count
        guard k >= 2, matrix.counts.count == k, matrix.counts.allSatisfy({ $0.count == k && $0.allSatisfy { $0 >= 0 } }) else {
            return Self.section("confusion", "Confusion matrix (test set)",
                                Self.note("results.json holds a confusion matrix that is not one count per pair of its \(k) classes; it is left out."))
        }
        guard k <= Self.largestConfusionMatrix else {
            return Self.section("confusion", "Confusion matrix (test set)",
                                Self.note("\(k) classes are too many to draw (at most \(Self.largestConfusionMatrix)); the counts are in results.json."))
        }
        return Self.section("confusion", "Confusion matrix (test set)", Self.confusionSVG(matrix)
            + Self.note("Rows: the true class; columns: the predicted class. Shading: the share of the row; the right column is each class's recall."))
    }

    /// Classes beyond which the matrix is not drawn (its cells would be specks).
    static let largestConfusionMatrix = 60

    static func confusionSVG(_ matrix: RunResults.Confusion) -> String {
        let k = matrix.classes.count, cell = k <= 10 ? 44.0 : max(14, 440 / Double(k))
        let labelWidth = min(150, 12 + 7 * Double(matrix.classes.map(\.count).max() ?? 4))
        let left = labelWidth + 24, top = 24.0
        let width = left + cell * Double(k) + 70, height = top + cell * Double(k) + labelWidth + 20
        var s = "<svg id=\"confusion-matrix\" class=\"chart confusion\" viewBox=\"0 0 \(px(width)) \(px(height))\" style=\"max-width:\(px(width))px\" role=\"img\" aria-label=\"confusion matrix\">"
        s += "<text class=\"axis-label\" x=\"\(px(left + cell * Double(k) / 2))\" y=\"\(px(height - 4))\" text-anchor=\"middle\">predicted class</text>"
        s += "<text class=\"axis-label\" transform=\"translate(14 \(px(top + cell * Double(k) / 2))) rotate(-90)\" text-anchor=\"middle\">true class</text>"
        s += "<text class=\"tick\" x=\"\(px(left + cell * Double(k) + 35))\" y=\"\(px(top - 8))\" text-anchor=\"middle\">recall</text>"
        let blue = RGB(hex: Palette.blue)
        for t in 0..<k {
            let row = t < matrix.counts.count ? matrix.counts[t] : []
            let total = max(row.reduce(0, +), 1)
            let y = top + cell * Double(t)
            s += "<text class=\"tick class-name\" x=\"\(px(left - 6))\" y=\"\(px(y + cell / 2 + 4))\" text-anchor=\"end\">\(escapeHTML(matrix.classes[t]))</text>"
            for p in 0..<k {
                let count = p < row.count ? row[p] : 0, share = Double(count) / Double(total)
                let x = left + cell * Double(p)
                s += "<rect x=\"\(px(x))\" y=\"\(px(y))\" width=\"\(px(cell - 1))\" height=\"\(px(cell - 1))\" fill=\"\(DecisionRegions.hex(RGB.white.mixed(with: blue, share)))\"><title>true \(escapeHTML(matrix.classes[t])), predicted \(escapeHTML(matrix.classes[p])): \(count)</title></rect>"
                if cell >= 24 {
                    s += "<text class=\"cm-count\" data-true=\"\(t)\" data-predicted=\"\(p)\" x=\"\(px(x + cell / 2))\" y=\"\(px(y + cell / 2 + 4))\" text-anchor=\"middle\" fill=\"\(share > 0.55 ? "#fff" : "#222")\">\(count)</text>"
                }
            }
            let recall = Double(p(row, t)) / Double(total)
            s += "<text class=\"tick\" x=\"\(px(left + cell * Double(k) + 35))\" y=\"\(px(y + cell / 2 + 4))\" text-anchor=\"middle\">\(String(format: "%.1f%%", recall * 100))</text>"
        }
        for p in 0..<k {
            let x = left + cell * Double(p) + cell / 2, y = top + cell * Double(k) + 8
            s += "<text class=\"tick class-name\" transform=\"translate(\(px(x + 4)) \(px(y))) rotate(-45)\" text-anchor=\"end\">\(escapeHTML(matrix.classes[p]))</text>"
        }
        return s + "</svg>"
    }

    private static func p(_ row: [Int], _ t: Int) -> Int { t < row.count ? row[t] : 0 }
}

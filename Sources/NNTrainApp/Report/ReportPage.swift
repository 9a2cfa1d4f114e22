// report.html: one self-contained page (inline CSS and SVG, images as data
// URIs, no script, nothing fetched) about one run directory.

import Foundation
import NNCore
import NNTraining

/// What the decision-region section shows.
enum RegionsContent {
    /// The model does not take two inputs: no section.
    case none
    /// The section's body.
    case html(String)
    /// Why the section is empty (no model file yet, unreadable data, …).
    case note(String)
}

/// The page for one run.
struct ReportPage {
    var records: RunRecords
    /// Whether the run is in progress, so the page reloads itself.
    var live: Bool
    var regions: RegionsContent = .none
    var generated = Date()

    /// Seconds between reloads: about one epoch, within 2…30.
    var refreshSeconds: Int {
        let last = records.epochs.last?.seconds ?? 5
        return Int(min(max(last.rounded(.up), 2), 30))
    }

    func html() -> String {
        var s = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        s += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        if live { s += "<meta http-equiv=\"refresh\" content=\"\(refreshSeconds)\">" }
        s += "<title>\(escapeHTML(title))</title><style>\(ReportStyle.css)</style></head><body><main>"
        s += header()
        s += curvesSection() + learningRateSection() + histogramSection() + confusionSection() + regionsSection()
        s += throughputSection() + notesSection()
        s += "<footer>Written by nntrain report at \(Self.timestamp(generated))\(live ? "; reloads every \(refreshSeconds) s while the run is in progress" : "").</footer>"
        return s + "</main></body></html>\n"
    }

    var title: String { "nntrain report: " + URL(fileURLWithPath: records.directory).lastPathComponent }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: date)
    }

    /// `<section>` with a heading.
    static func section(_ id: String, _ heading: String, _ body: String) -> String {
        "<section id=\"\(id)-section\"><h2>\(escapeHTML(heading))</h2>\(body)</section>"
    }

    static func note(_ text: String) -> String { "<p class=\"note\">\(escapeHTML(text))</p>" }

    private func notesSection() -> String {
        records.notes.isEmpty ? "" : Self.section("notes", "Notes", "<ul class=\"notes\">" + records.notes.map { "<li>\(escapeHTML($0))</li>" }.joined() + "</ul>")
    }

    private func regionsSection() -> String {
        switch regions {
        case .none: return ""
        case .html(let body): return Self.section("regions", "Decision regions", body)
        case .note(let text): return Self.section("regions", "Decision regions", Self.note(text))
        }
    }
}

// MARK: - Header

extension ReportPage {
    private func header() -> String {
        let info = records.info
        let reason = live ? "running" : (info?.exitReason ?? "unknown")
        var s = "<header><h1>\(escapeHTML(title))</h1>"
        s += "<p><span class=\"status status-\(escapeHTML(reason))\">\(escapeHTML(statusText(reason)))</span>"
        if let message = info?.message { s += " <span class=\"message\">\(escapeHTML(message))</span>" }
        s += "</p><dl class=\"facts\">"
        for (name, value) in facts() where !value.isEmpty {
            s += "<dt>\(escapeHTML(name))</dt><dd>\(escapeHTML(value))</dd>"
        }
        return s + "</dl>" + finalMetrics() + "</header>"
    }

    private func statusText(_ reason: String) -> String {
        let epochs = records.config?.training.epochs
        let done = records.epochs.last?.epoch ?? 0
        let progress = "epoch \(done)" + (epochs.map { " of \($0)" } ?? "")
        switch reason {
        case "running": return "running: \(progress)"
        case "finished": return "finished: \(progress)"
        case "early_stopped": return "stopped early: \(progress)"
        case "stopped": return "stopped on request: \(progress)"
        case "error": return "ended with an error: \(progress)"
        case "unknown": return progress
        default: return "\(reason): \(progress)"
        }
    }

    /// The run's facts, name and value.
    private func facts() -> [(String, String)] {
        var facts: [(String, String)] = []
        if let config = records.config { facts += Self.configFacts(config) }
        guard let info = records.info else { return facts }
        facts.append(("nntrain", info.nntrainVersion ?? ""))
        facts.append(("world size", info.worldSize.map(String.init) ?? ""))
        facts.append(("hosts", Self.hostSummary(info.hosts ?? [])))
        facts.append(("device", info.device ?? ""))
        facts.append(("accelerator", info.accelerator ?? ""))
        facts.append(("communicator", info.communicator ?? ""))
        facts.append(("parameters", info.parameterCount.map(String.init) ?? ""))
        facts.append(("started", info.startTime ?? ""))
        facts.append(("ended", info.endTime ?? ""))
        return facts
    }

    /// `a ×2, b` for the ranks' hosts.
    static func hostSummary(_ hosts: [String]) -> String {
        var order: [String] = [], counts: [String: Int] = [:]
        for host in hosts {
            if counts[host] == nil { order.append(host) }
            counts[host, default: 0] += 1
        }
        return order.map { counts[$0]! > 1 ? "\($0) ×\(counts[$0]!)" : $0 }.joined(separator: ", ")
    }

    static func configFacts(_ config: RunConfig) -> [(String, String)] {
        let data = config.data
        var dataText = data.train.summary
        if data.validationSplit > 0 { dataText += ", \(formatNumber(data.validationSplit * 100))% held out for validation" }
        if let test = data.test { dataText += "; test: " + test.summary }
        let o = config.optimizer
        var optimizer = "\(o.name.rawValue), learning rate \(formatNumber(Double(o.learningRate)))"
        if o.schedule.name != .constant { optimizer += ", \(o.schedule.name.rawValue) schedule" }
        if o.schedule.warmupSteps > 0 { optimizer += ", \(o.schedule.warmupSteps) warm-up steps" }
        let t = config.training
        return [("data", dataText + " (scaling: \(data.scale.rawValue))"), ("model", layerSummary(config)),
                ("loss", "\(config.loss.rawValue) (\(config.task.rawValue))"), ("optimizer", optimizer),
                ("training", "\(t.epochs) epoch\(t.epochs == 1 ? "" : "s"), batch \(t.batchSize), seed \(t.seed)")]
    }

    /// `dense 32 tanh → dropout 0.1 → dense 1 sigmoid`.
    static func layerSummary(_ config: RunConfig) -> String {
        config.layerSpecs.map { spec in
            switch spec {
            case .dense(let units, let activation, _, _, _): "dense \(units) \(activation.name)"
            case .dropout(let rate): "dropout \(formatNumber(Double(rate)))"
            }
        }.joined(separator: " → ")
    }

    /// A table of the last epoch's training and validation figures and the test metrics.
    private func finalMetrics() -> String {
        let names = records.isClassifier ? ["loss", "accuracy"] : ["loss", "mse", "mae"]
        var rows: [(String, [Double?])] = []
        if let last = records.epochs.last {
            rows.append(("training (epoch \(last.epoch))", names.map { last.metric($0, validation: false) }))
            if last.valLoss != nil { rows.append(("validation (epoch \(last.epoch))", names.map { last.metric($0, validation: true) })) }
        }
        if let test = records.results?.test {
            let values = ["loss": test.loss, "accuracy": test.accuracy, "mse": test.mse, "mae": test.mae]
            rows.append(("test" + (test.samples.map { " (\($0) samples)" } ?? ""), names.map { values[$0] ?? nil }))
        }
        guard !rows.isEmpty else { return "" }
        var s = "<table id=\"final-metrics\" class=\"metrics\"><thead><tr><th></th>" + names.map { "<th>\($0)</th>" }.joined() + "</tr></thead><tbody>"
        for (label, values) in rows {
            s += "<tr><th>\(escapeHTML(label))</th>" + zip(names, values).map { name, v in
                "<td>\(v.map { name == "accuracy" ? String(format: "%.2f%%", $0 * 100) : formatNumber($0) } ?? "–")</td>"
            }.joined() + "</tr>"
        }
        return s + "</tbody></table>"
    }
}

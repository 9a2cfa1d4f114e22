// CSV files with a header: one column is the label, the others are numeric
// features. The reader accepts `,` separators, whitespace around fields,
// double-quoted fields with `""` escapes (line breaks inside quotes too), CRLF
// line ends and blank lines, and keeps exact 1-based line numbers for messages.

import NNCore

/// How a CSV label column is read.
public enum LabelMode: Sendable {
    /// Class labels: non-negative integer indices, or names mapped to indices.
    case classes
    /// Regression targets: numbers.
    case values
}

/// Loads CSV files into datasets.
public enum CSVLoader {
    // MARK: - Public API

    /// Loads a labeled CSV file: the column `label` is the target, every other
    /// column a numeric feature, in header order.
    ///
    /// In `.classes` mode labels that are all non-negative integers are class
    /// indices (`classNames` nil); otherwise they are names, numbered in sorted
    /// order (`classNames` is that list). When `classNames` is given (the
    /// training set's, for a test set), names must be among them, or, if every
    /// label is an integer, they are indices below `classNames.count`.
    /// In `.values` mode the label column must be numeric (labelWidth 1).
    /// - Throws: `UserError` naming `path:LINE` and the column for every problem.
    public static func load(path: String, label: String, mode: LabelMode, classNames: [String]? = nil) throws -> Dataset {
        try load(bytes: FileBytes.read(path, role: "CSV file"), path: path, label: label, mode: mode, classNames: classNames)
    }

    /// `load(path:…)` on a file's content; `path` names it in messages and the dataset's origin.
    public static func load(bytes: [UInt8], path: String, label: String, mode: LabelMode,
                            classNames: [String]? = nil) throws -> Dataset {
        var reader = CSVReader(bytes: bytes, path: path)
        let (headerLine, header) = try readHeader(&reader, path: path)
        let labelColumns = header.indices.filter { header[$0] == label }
        guard let labelColumn = labelColumns.first else {
            throw UserError("\(path):\(headerLine): no column named '\(label)' (columns: \(list(header, limit: 20)))\(suggestion(label, header)); set the label to one of the columns")
        }
        guard labelColumns.count == 1 else {
            throw UserError("\(path):\(headerLine): the label column '\(label)' appears \(labelColumns.count) times (columns \(labelColumns.map { String($0 + 1) }.joined(separator: ", "))); rename all but one")
        }
        let featureColumns = header.indices.filter { $0 != labelColumn }
        guard !featureColumns.isEmpty else {
            throw UserError("\(path):\(headerLine): no feature columns besides the label '\(label)'; add at least one numeric column")
        }

        let rows = try readRows(&reader, path: path, header: header, featureColumns: featureColumns,
                                labelColumn: labelColumn, headerLine: headerLine)
        let labels: [Float]
        var names: [String]?
        switch mode {
        case .values:
            labels = try rows.labelCells.indices.map { i in
                try number(rows.labelCells[i], path: path, line: rows.lines[i], column: label)
            }
        case .classes:
            (labels, names) = try classLabels(rows.labelCells, lines: rows.lines, path: path, column: label,
                                              given: classNames)
        }
        var dataset = Dataset(name: path, features: rows.features, featureCount: featureColumns.count, labels: labels,
                              labelWidth: 1, classNames: names, origin: origin(path: path, lines: rows.lines))
        dataset.featureNames = featureColumns.map { header[$0] }
        return dataset
    }

    /// Loads the feature columns of a CSV file for prediction: every column
    /// not named in `excluding` (e.g. a label column, which may be absent).
    /// The dataset has no labels (`labelWidth` 0).
    /// - Throws: `UserError` naming `path:LINE` and the column for every problem.
    public static func loadFeatures(path: String, excluding: [String] = []) throws -> Dataset {
        try loadFeatures(bytes: FileBytes.read(path, role: "CSV file"), path: path, excluding: excluding)
    }

    /// `loadFeatures(path:excluding:)` on a file's content; `path` names it in messages.
    public static func loadFeatures(bytes: [UInt8], path: String, excluding: [String] = []) throws -> Dataset {
        var reader = CSVReader(bytes: bytes, path: path)
        let (headerLine, header) = try readHeader(&reader, path: path)
        let featureColumns = header.indices.filter { !excluding.contains(header[$0]) }
        guard !featureColumns.isEmpty else {
            throw UserError("\(path):\(headerLine): no feature columns (columns: \(list(header, limit: 20))); give the feature columns the model was trained on")
        }
        let rows = try readRows(&reader, path: path, header: header, featureColumns: featureColumns,
                                labelColumn: nil, headerLine: headerLine)
        return Dataset(name: path, features: rows.features, featureCount: featureColumns.count, labels: [],
                       labelWidth: 0, classNames: nil, origin: origin(path: path, lines: rows.lines))
    }

    /// Loads the columns named `columns` of a CSV file, in that order, for
    /// prediction; columns named in `ignoring` (a label) may be present and
    /// are skipped. Missing or unexpected columns are an error naming them.
    /// - Throws: `UserError` naming `path:LINE` and the columns.
    public static func loadFeatures(path: String, columns: [String], ignoring: [String] = []) throws -> Dataset {
        try loadFeatures(bytes: FileBytes.read(path, role: "CSV file"), path: path, columns: columns, ignoring: ignoring)
    }

    /// `loadFeatures(path:columns:ignoring:)` on a file's content; `path` names it in messages.
    public static func loadFeatures(bytes: [UInt8], path: String, columns: [String], ignoring: [String] = []) throws -> Dataset {
        var reader = CSVReader(bytes: bytes, path: path)
        let (headerLine, header) = try readHeader(&reader, path: path)
        let missing = columns.filter { !header.contains($0) }
        let extra = header.filter { !columns.contains($0) && !ignoring.contains($0) }
        guard missing.isEmpty && extra.isEmpty else {
            var problems: [String] = []
            func quoted(_ names: [String]) -> String { list(names.map { "'\($0)'" }, limit: 20) }
            if !missing.isEmpty { problems.append("missing column\(missing.count == 1 ? "" : "s") \(quoted(missing))") }
            if !extra.isEmpty { problems.append("unexpected column\(extra.count == 1 ? "" : "s") \(quoted(extra))") }
            throw UserError("\(path):\(headerLine): \(problems.joined(separator: "; ")); the model takes the columns \(list(columns, limit: 40))")
        }
        let featureColumns = columns.compactMap { header.firstIndex(of: $0) }
        let rows = try readRows(&reader, path: path, header: header, featureColumns: featureColumns,
                                labelColumn: nil, headerLine: headerLine)
        var dataset = Dataset(name: path, features: rows.features, featureCount: featureColumns.count, labels: [],
                              labelWidth: 0, classNames: nil, origin: origin(path: path, lines: rows.lines))
        dataset.featureNames = columns
        return dataset
    }

    // MARK: - Rows

    /// The parsed data rows: features converted, label cells kept as text.
    struct Rows {
        /// features: (N, F).
        var features: [Float] = []
        /// One label cell per row (empty when there is no label column).
        var labelCells: [String] = []
        /// The 1-based line each row starts on.
        var lines: [Int] = []
    }

    /// Reads the header; an empty file is an error.
    static func readHeader(_ reader: inout CSVReader, path: String) throws -> (line: Int, names: [String]) {
        guard let header = try reader.next() else {
            throw UserError("\(path): the file is empty; a CSV file needs a header line naming the columns, then one row per sample")
        }
        return (header.line, header.fields)
    }

    /// Reads every data row, checking widths and converting feature cells.
    static func readRows(_ reader: inout CSVReader, path: String, header: [String], featureColumns: [Int],
                         labelColumn: Int?, headerLine: Int) throws -> Rows {
        var rows = Rows()
        rows.features.reserveCapacity(featureColumns.count * max(16, reader.bytes.count / max(1, 4 * header.count)))
        while let record = try reader.next() {
            guard record.fields.count == header.count else {
                throw UserError("\(path):\(record.line): \(record.fields.count) field\(record.fields.count == 1 ? "" : "s") but the header has \(header.count); fix that row (quote fields that contain commas)")
            }
            for column in featureColumns {
                rows.features.append(try number(record.fields[column], path: path, line: record.line, column: header[column]))
            }
            if let labelColumn { rows.labelCells.append(record.fields[labelColumn]) }
            rows.lines.append(record.line)
        }
        guard !rows.lines.isEmpty else {
            throw UserError("\(path): no data rows after the header (line \(headerLine)); add samples, one per line")
        }
        return rows
    }

    /// The origin for `location(ofSample:)`: per-row lines only when rows are
    /// not simply one per line after the header.
    static func origin(path: String, lines: [Int]) -> Dataset.Origin {
        let first = lines.first ?? 2
        let contiguous = lines.indices.allSatisfy { lines[$0] == first + $0 }
        return .csv(path: path, firstLine: first, lines: contiguous ? nil : lines.map { Int32(clamping: $0) })
    }

    // MARK: - Cells

    /// A finite number, or an error naming the cell.
    static func number(_ cell: String, path: String, line: Int, column: String) throws -> Float {
        if let value = Float(cell), value.isFinite { return value }
        if cell.isEmpty {
            throw UserError("\(path):\(line): column '\(column)' is empty; fill it in or remove that row")
        }
        if Float(cell) != nil {
            throw UserError("\(path):\(line): column '\(column)': '\(cell)' is not a finite 32-bit number; fix or remove that row")
        }
        throw UserError("\(path):\(line): column '\(column)': '\(cell)' is not a number; fix or remove that row")
    }

    /// A non-negative integer exactly representable as Float, if `cell` is one.
    static func classIndex(_ cell: String) -> Int? {
        guard let value = Float(cell), value >= 0, value < 16_777_216, value == value.rounded() else { return nil }
        return Int(value)
    }

    /// Class indices for the label cells, and the class names when they were names.
    static func classLabels(_ cells: [String], lines: [Int], path: String, column: String,
                            given: [String]?) throws -> ([Float], [String]?) {
        func emptyCheck() throws {
            if let i = cells.firstIndex(where: \.isEmpty) {
                throw UserError("\(path):\(lines[i]): column '\(column)' is empty; give every row a label or remove it")
            }
        }
        try emptyCheck()
        let allNumeric = cells.allSatisfy { Float($0) != nil }

        if let given {
            var index: [String: Int] = [:]
            for (k, name) in given.enumerated() where index[name] == nil { index[name] = k }
            if cells.allSatisfy({ index[$0] != nil }) {
                return (cells.map { Float(index[$0]!) }, given)
            }
            if allNumeric {
                for (i, cell) in cells.enumerated() {
                    guard let k = classIndex(cell), k < given.count else {
                        throw UserError("\(path):\(lines[i]): column '\(column)': '\(cell)' is not a class index below \(given.count) nor one of the known classes (\(list(given, limit: 20))); fix the label")
                    }
                }
                return (cells.map { Float(classIndex($0)!) }, given)
            }
            let i = cells.firstIndex { index[$0] == nil }!
            throw UserError("\(path):\(lines[i]): column '\(column)': unknown class '\(cells[i])' (known classes: \(list(given, limit: 20)))\(suggestion(cells[i], given)); fix the label, or add that class to the training data")
        }

        if allNumeric {
            for (i, cell) in cells.enumerated() where classIndex(cell) == nil {
                throw UserError("\(path):\(lines[i]): column '\(column)': '\(cell)' is not a class index (a non-negative integer); use whole numbers 0, 1, 2, … or class names, or make this a regression task")
            }
            return (cells.map { Float(classIndex($0)!) }, nil)
        }
        let names = Array(Set(cells)).sorted()
        var index: [String: Int] = [:]
        for (k, name) in names.enumerated() { index[name] = k }
        return (cells.map { Float(index[$0]!) }, names)
    }

    // MARK: - Message helpers

    /// `a, b, c` — or the first `limit` and a count when there are many.
    static func list(_ names: [String], limit: Int) -> String {
        let shown = names.prefix(limit).map { $0.isEmpty ? "''" : $0 }.joined(separator: ", ")
        return names.count > limit ? "\(shown), … (\(names.count) in all)" : shown
    }

    /// `; did you mean 'x'?` or nothing.
    static func suggestion(_ word: String, _ candidates: [String]) -> String {
        closestMatch(word, in: candidates).map { "; did you mean '\($0)'?" } ?? ""
    }
}

// MARK: - Reader

/// A record-at-a-time CSV tokenizer over a file's bytes.
struct CSVReader {
    /// The whole file.
    let bytes: [UInt8]
    /// For messages.
    let path: String
    /// The next byte to read.
    var position = 0
    /// The 1-based line of `position`.
    var line = 1

    init(bytes: [UInt8], path: String) {
        self.bytes = bytes
        self.path = path
        // A UTF-8 byte order mark is not part of the first column's name.
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { position = 3 }
    }

    private static let comma = UInt8(ascii: ","), newline = UInt8(ascii: "\n"), quote = UInt8(ascii: "\"")
    private static let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), carriageReturn = UInt8(ascii: "\r")

    private func isBlank(_ byte: UInt8) -> Bool {
        byte == Self.space || byte == Self.tab || byte == Self.carriageReturn
    }

    /// The next non-blank record and the line it starts on, or nil at the end.
    mutating func next() throws -> (line: Int, fields: [String])? {
        // Skip lines holding nothing but whitespace.
        while true {
            var scan = position
            while scan < bytes.count && isBlank(bytes[scan]) { scan += 1 }
            if scan == bytes.count { position = scan; return nil }
            if bytes[scan] != Self.newline { break }
            position = scan + 1
            line += 1
        }
        let start = line
        var fields: [String] = []
        while true {
            while position < bytes.count && (bytes[position] == Self.space || bytes[position] == Self.tab) { position += 1 }
            if position < bytes.count && bytes[position] == Self.quote {
                fields.append(try quotedField(recordLine: start, column: fields.count + 1))
            } else {
                let fieldStart = position
                while position < bytes.count && bytes[position] != Self.comma && bytes[position] != Self.newline { position += 1 }
                var fieldEnd = position
                while fieldEnd > fieldStart && isBlank(bytes[fieldEnd - 1]) { fieldEnd -= 1 }
                fields.append(String(decoding: bytes[fieldStart..<fieldEnd], as: UTF8.self))
            }
            if position < bytes.count && bytes[position] == Self.comma {
                position += 1
                continue
            }
            if position < bytes.count {  // a newline
                position += 1
                line += 1
            }
            return (start, fields)
        }
    }

    /// Reads a quoted field starting at the opening quote, and the blanks after it.
    private mutating func quotedField(recordLine: Int, column: Int) throws -> String {
        let openLine = line
        position += 1
        var content: [UInt8] = []
        while true {
            guard position < bytes.count else {
                throw UserError("\(path):\(openLine): field \(column) opens a quote that never closes; add the closing \" (write \"\" for a quote inside a field)")
            }
            let byte = bytes[position]
            if byte == Self.quote {
                if position + 1 < bytes.count && bytes[position + 1] == Self.quote {
                    content.append(Self.quote)
                    position += 2
                    continue
                }
                position += 1
                break
            }
            if byte == Self.newline { line += 1 }
            content.append(byte)
            position += 1
        }
        while position < bytes.count && isBlank(bytes[position]) { position += 1 }
        if position < bytes.count && bytes[position] != Self.comma && bytes[position] != Self.newline {
            throw UserError("\(path):\(line): field \(column) has text after its closing quote; quote the whole field and write \"\" for a quote inside it")
        }
        return String(decoding: content, as: UTF8.self)
    }
}

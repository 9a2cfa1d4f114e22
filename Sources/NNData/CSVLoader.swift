// CSV files with a header: one column is the label, the others are numeric
// features. The reader accepts `,` separators, whitespace around fields,
// double-quoted fields with `""` escapes (line breaks inside quotes too), CRLF
// line ends and blank lines, and keeps exact 1-based line numbers for messages.
// A file is read whole (`load`), or a chunk of rows at a time from a
// read-only mapping (`Stream`, for a file larger than memory); both convert
// rows with the same code and refuse the same input with the same messages.

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
        try bytes.withUnsafeBytes { content in
            var reader = CSVReader(bytes: content, path: path)
            let layout = try RecordLayout(&reader, path: path, label: label)
            var labels: LabelColumn? = LabelColumn(mode: mode, path: path, column: label)
            let rows = try readRows(&reader, layout, labels: &labels)
            let (values, names) = try labels!.values(given: classNames)
            var dataset = Dataset(name: path, features: rows.features, featureCount: layout.featureColumns.count,
                                  labels: values, labelWidth: 1, classNames: names, origin: origin(path: path, lines: rows.lines))
            dataset.featureNames = layout.featureNames
            return dataset
        }
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
        try bytes.withUnsafeBytes { content in
            var reader = CSVReader(bytes: content, path: path)
            let (headerLine, header) = try readHeader(&reader, path: path)
            let featureColumns = header.indices.filter { !excluding.contains(header[$0]) }
            guard !featureColumns.isEmpty else {
                throw UserError("\(path):\(headerLine): no feature columns (columns: \(list(header, limit: 20))); give the feature columns the model was trained on")
            }
            let layout = RecordLayout(path: path, header: header, headerLine: headerLine, featureColumns: featureColumns, labelColumn: nil)
            var none: LabelColumn?
            let rows = try readRows(&reader, layout, labels: &none)
            return Dataset(name: path, features: rows.features, featureCount: featureColumns.count, labels: [],
                           labelWidth: 0, classNames: nil, origin: origin(path: path, lines: rows.lines))
        }
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
        try bytes.withUnsafeBytes { content in
            var reader = CSVReader(bytes: content, path: path)
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
            let layout = RecordLayout(path: path, header: header, headerLine: headerLine,
                                      featureColumns: columns.compactMap { header.firstIndex(of: $0) }, labelColumn: nil)
            var none: LabelColumn?
            let rows = try readRows(&reader, layout, labels: &none)
            var dataset = Dataset(name: path, features: rows.features, featureCount: layout.featureColumns.count, labels: [],
                                  labelWidth: 0, classNames: nil, origin: origin(path: path, lines: rows.lines))
            dataset.featureNames = columns
            return dataset
        }
    }

    // MARK: - Rows

    /// Which columns of a file's records are features and which is the label.
    struct RecordLayout {
        let path: String
        let header: [String]
        let headerLine: Int
        let featureColumns: [Int]
        let labelColumn: Int?

        init(path: String, header: [String], headerLine: Int, featureColumns: [Int], labelColumn: Int?) {
            (self.path, self.header, self.headerLine) = (path, header, headerLine)
            (self.featureColumns, self.labelColumn) = (featureColumns, labelColumn)
        }

        /// Reads the header of a labelled file: the column `label` is the
        /// label, every other column a feature. Throws when the label column
        /// is missing or repeated, or is the only column.
        init(_ reader: inout CSVReader, path: String, label: String) throws {
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
            self.init(path: path, header: header, headerLine: headerLine, featureColumns: featureColumns, labelColumn: labelColumn)
        }

        var featureNames: [String] { featureColumns.map { header[$0] } }

        /// The error for a file with a header and no data rows.
        var noRows: UserError {
            UserError("\(path): no data rows after the header (line \(headerLine)); add samples, one per line")
        }

        /// Checks one record's width, converts its feature cells into
        /// `features` (room for `featureColumns.count` values) and hands its
        /// label cell to `labels`.
        func convert(line: Int, cells: [CSVCell], in bytes: UnsafeRawBufferPointer, into features: UnsafeMutablePointer<Float>,
                     labels: inout LabelColumn?) throws {
            guard cells.count == header.count else {
                throw UserError("\(path):\(line): \(cells.count) field\(cells.count == 1 ? "" : "s") but the header has \(header.count); fix that row (quote fields that contain commas)")
            }
            for (k, column) in featureColumns.enumerated() {
                features[k] = try cells[column].number(in: bytes, path: path, line: line, column: header[column])
            }
            if let labelColumn { labels?.add(cells[labelColumn].text(in: bytes), line: line) }
        }
    }

    /// The parsed data rows: features converted, and the line each row starts on.
    struct Rows {
        /// features: (N, F).
        var features: [Float] = []
        /// The 1-based line each row starts on.
        var lines: [Int32] = []
    }

    /// Reads the header; an empty file is an error.
    static func readHeader(_ reader: inout CSVReader, path: String) throws -> (line: Int, names: [String]) {
        guard let header = try reader.next() else { throw emptyFile(path) }
        return (header.line, header.fields)
    }

    static func emptyFile(_ path: String) -> UserError {
        UserError("\(path): the file is empty; a CSV file needs a header line naming the columns, then one row per sample")
    }

    /// Reads every data row, checking widths and converting feature cells.
    static func readRows(_ reader: inout CSVReader, _ layout: RecordLayout, labels: inout LabelColumn?) throws -> Rows {
        var rows = Rows()
        let width = layout.featureColumns.count
        rows.features.reserveCapacity(width * max(16, reader.bytes.count / max(1, 4 * layout.header.count)))
        var cells: [CSVCell] = []
        while let line = try reader.next(into: &cells) {
            let filled = rows.features.count
            rows.features.append(contentsOf: repeatElement(0, count: width))
            try rows.features.withUnsafeMutableBufferPointer {
                try layout.convert(line: line, cells: cells, in: reader.bytes, into: $0.baseAddress! + filled, labels: &labels)
            }
            rows.lines.append(Int32(clamping: line))
        }
        guard !rows.lines.isEmpty else { throw layout.noRows }
        return rows
    }

    /// The origin for `location(ofSample:)`: per-row lines only when rows are
    /// not simply one per line after the header.
    static func origin(path: String, lines: [Int32]) -> Dataset.Origin {
        .csv(path: path, lines: lines[...])
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
    static func classLabels(_ cells: LabelCells, path: String, column: String, given: [String]?) throws -> ([Float], [String]?) {
        if let empty = cells.first(where: \.isEmpty) {
            throw UserError("\(path):\(empty.line): column '\(column)' is empty; give every row a label or remove it")
        }
        let allNumeric = cells.distinct.allSatisfy { Float($0) != nil }

        if let given {
            var index: [String: Int] = [:]
            for (k, name) in given.enumerated() where index[name] == nil { index[name] = k }
            if cells.distinct.allSatisfy({ index[$0] != nil }) {
                return (cells.labels { Float(index[$0]!) }, given)
            }
            if allNumeric {
                if let bad = cells.first(where: { classIndex($0).map { $0 >= given.count } ?? true }) {
                    throw UserError("\(path):\(bad.line): column '\(column)': '\(bad.cell)' is not a class index below \(given.count) nor one of the known classes (\(list(given, limit: 20))); fix the label")
                }
                return (cells.labels { Float(classIndex($0)!) }, given)
            }
            let unknown = cells.first { index[$0] == nil }!
            throw UserError("\(path):\(unknown.line): column '\(column)': unknown class '\(unknown.cell)' (known classes: \(list(given, limit: 20)))\(suggestion(unknown.cell, given)); fix the label, or add that class to the training data")
        }

        if allNumeric {
            if let bad = cells.first(where: { classIndex($0) == nil }) {
                throw UserError("\(path):\(bad.line): column '\(column)': '\(bad.cell)' is not a class index (a non-negative integer); use whole numbers 0, 1, 2, … or class names, or make this a regression task")
            }
            return (cells.labels { Float(classIndex($0)!) }, nil)
        }
        let names = cells.distinct.sorted()
        var index: [String: Int] = [:]
        for (k, name) in names.enumerated() { index[name] = k }
        return (cells.labels { Float(index[$0]!) }, names)
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

// MARK: - Streaming

extension CSVLoader {
    /// The samples and features a labelled CSV file holds (after `limit`),
    /// from its header and a scan that only finds where its records end, so
    /// their size can be checked before anything is loaded. Nil when the
    /// file or its header cannot be read, or has no label column `label`:
    /// loading reports those.
    public static func shape(path: String, label: String, limit: Int? = nil) -> (count: Int, featureCount: Int)? {
        guard canStream(path), let file = try? FileBytes.map(path, role: "CSV file") else { return nil }
        // The reader reads the mapping, which lives as long as `file`.
        return withExtendedLifetime(file) {
            var reader = CSVReader(bytes: UnsafeRawBufferPointer(start: file.base, count: file.byteCount), path: path)
            guard let layout = try? RecordLayout(&reader, path: path, label: label) else { return nil }
            var rows = 0
            while reader.skip() { rows += 1 }
            return (min(rows, max(limit ?? rows, 0)), layout.featureColumns.count)
        }
    }

    /// Whether the file at `path` (after symbolic links) is a regular file,
    /// which can be mapped; a pipe or a device is read whole instead.
    public static func canStream(_ path: String) -> Bool {
        FileBytes.size(path) != nil
    }

    /// A labelled CSV file read a chunk of rows at a time from a read-only
    /// mapping, so a file larger than memory can be converted: only the
    /// label column (four bytes a row) and the lines rows start on are kept.
    /// It reads what `load` reads and refuses what `load` refuses, with the
    /// same messages; because class names come from every row, the labels
    /// are known only once the rows have been read (`labelsOnly()`). The
    /// file must not be cut short while it is read: the mapping's pages past
    /// a new end fault (SIGBUS), as for any mapped file.
    public final class Stream {
        /// The samples it delivers (after `limit`).
        public let count: Int
        /// Feature columns a row.
        public let featureCount: Int
        private let path: String
        private let file: MappedFile
        private let layout: RecordLayout
        private let classNames: [String]?
        private var reader: CSVReader
        /// The current record's cells, room kept from row to row.
        private var cells: [CSVCell] = []
        /// The file's data rows, all of them (before `limit`).
        private let rowCount: Int
        private var rowsRead = 0
        private var labels: LabelColumn?
        private var lines: [Int32] = []

        /// Opens the file and reads its header; `classNames` are the known
        /// classes, as for `load`. Throws a `UserError` as `load` does for
        /// the header or a file without rows.
        public init(path: String, label: String, mode: LabelMode, classNames: [String]? = nil, limit: Int? = nil) throws {
            guard let file = try FileBytes.map(path, role: "CSV file") else { throw CSVLoader.emptyFile(path) }
            self.file = file
            self.path = path
            self.classNames = classNames
            reader = CSVReader(bytes: UnsafeRawBufferPointer(start: file.base, count: file.byteCount), path: path)
            layout = try RecordLayout(&reader, path: path, label: label)
            var scan = reader
            var rows = 0
            while scan.skip() { rows += 1 }
            guard rows > 0 else { throw layout.noRows }
            rowCount = rows
            count = min(rows, max(limit ?? rows, 0))
            featureCount = layout.featureColumns.count
            labels = LabelColumn(mode: mode, path: path, column: label)
            lines.reserveCapacity(count)
        }

        /// Converts the next `rows.count / featureCount` rows into `rows`.
        public func read(into rows: UnsafeMutableBufferPointer<Float>) throws {
            let n = rows.count / featureCount
            precondition(n * featureCount == rows.count && rowsRead + n <= count, "reading past the rows asked for")
            for k in 0..<n { try convertNext(into: rows.baseAddress! + k * featureCount) }
        }

        /// Converts the next row; the lines and labels of rows past the
        /// limit are not kept, only the classes their labels name.
        private func convertNext(into features: UnsafeMutablePointer<Float>) throws {
            guard let line = try reader.next(into: &cells) else { throw changed }
            let kept = rowsRead < count
            labels?.keepsRows = kept
            try layout.convert(line: line, cells: cells, in: reader.bytes, into: features, labels: &labels)
            if kept { lines.append(Int32(clamping: line)) }
            rowsRead += 1
        }

        /// Once the `count` rows are read: reads and checks the rows past
        /// `limit` (their labels name classes too, as when loading), then
        /// returns the delivered rows' labels with the description a loaded
        /// dataset has (name, class names, origin, feature names) and no feature rows.
        public func labelsOnly() throws -> Dataset {
            precondition(rowsRead == count, "labels asked for before the rows were read")
            var scratch = [Float](repeating: 0, count: featureCount)
            try scratch.withUnsafeMutableBufferPointer { buffer in
                while rowsRead < rowCount { try convertNext(into: buffer.baseAddress!) }
            }
            if reader.skip() { throw changed }
            let (values, names) = try labels!.values(given: classNames)
            labels = nil
            var dataset = Dataset(name: path, features: [], featureCount: 0, labels: values, labelWidth: 1,
                                  classNames: names, origin: CSVLoader.origin(path: path, lines: lines))
            dataset.featureNames = layout.featureNames
            lines = []
            return dataset
        }

        /// The file no longer holds the rows first counted in it.
        private var changed: UserError {
            UserError("\(path): the file changed while it was read (\(rowCount) rows when opened); run again once nothing writes to it")
        }
    }
}

// MARK: - Labels

/// A label column's cells, each distinct text kept once with the line it
/// first appears on, and per row which one it is: a class column of a large
/// file costs four bytes a row, not a string.
struct LabelCells {
    /// The distinct cells, in the order they first appear.
    private(set) var distinct: [String] = []
    /// The line each distinct cell first appears on.
    private(set) var firstLines: [Int] = []
    /// Per row, its cell's index in `distinct`.
    private(set) var rows: [Int32] = []
    private var index: [String: Int32] = [:]

    /// Adds a row's cell; with `keepingRow` false only the cell is noted
    /// (a row past the limit: its label names a class, it is not a sample).
    mutating func add(_ cell: String, line: Int, keepingRow: Bool = true) {
        if let known = index[cell] {
            if keepingRow { rows.append(known) }
            return
        }
        let id = Int32(distinct.count)
        index[cell] = id
        distinct.append(cell)
        firstLines.append(line)
        if keepingRow { rows.append(id) }
    }

    /// The first row, in file order, whose cell meets `condition`: distinct
    /// cells are kept in the order they first appear, so the first of them
    /// that meets it first appears on that row.
    func first(where condition: (String) -> Bool) -> (line: Int, cell: String)? {
        distinct.firstIndex(where: condition).map { (firstLines[$0], distinct[$0]) }
    }

    /// One label per row: `value` of its cell.
    func labels(_ value: (String) -> Float) -> [Float] {
        let values = distinct.map(value)
        return rows.map { values[Int($0)] }
    }
}

/// The label column of a file being read: class cells interned, or
/// regression targets converted as they come. A target that is not a number
/// is reported only once every row has been read, after any error in the
/// features, as when the labels are converted after the rows.
struct LabelColumn {
    let mode: LabelMode
    let path: String
    let column: String
    /// Whether the rows added from now on are samples (false past a limit).
    var keepsRows = true
    private var cells = LabelCells()
    private var targets: [Float] = []
    private var firstBadTarget: UserError?

    init(mode: LabelMode, path: String, column: String) {
        (self.mode, self.path, self.column) = (mode, path, column)
    }

    mutating func add(_ cell: String, line: Int) {
        switch mode {
        case .classes:
            cells.add(cell, line: line, keepingRow: keepsRows)
        case .values:
            do {
                let target = try CSVLoader.number(cell, path: path, line: line, column: column)
                if keepsRows { targets.append(target) }
            } catch {
                if firstBadTarget == nil { firstBadTarget = error as? UserError }
                if keepsRows { targets.append(0) }
            }
        }
    }

    /// The labels of every row added, and the class names when the classes were names.
    func values(given classNames: [String]?) throws -> ([Float], [String]?) {
        switch mode {
        case .values:
            if let firstBadTarget { throw firstBadTarget }
            return (targets, nil)
        case .classes:
            return try CSVLoader.classLabels(cells, path: path, column: column, given: classNames)
        }
    }
}

// MARK: - Reader

/// A record-at-a-time CSV tokenizer over a file's bytes (an array's, or a
/// mapping's: the caller keeps them alive while it reads).
/// One field of a record: the bytes of an unquoted one (blanks around it
/// left out), or the text of a quoted one (its quotes undone).
enum CSVCell {
    case plain(Range<Int>)
    case quoted(String)

    /// The field's text.
    func text(in bytes: UnsafeRawBufferPointer) -> String {
        switch self {
        case .plain(let range): return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        case .quoted(let text): return text
        }
    }

    /// The field as a finite number, or an error naming it (see `CSVLoader.number`).
    @inline(__always)
    func number(in bytes: UnsafeRawBufferPointer, path: String, line: Int, column: String) throws -> Float {
        if case .plain(let range) = self, let value = ShortDecimal.float(UnsafeRawBufferPointer(rebasing: bytes[range])) {
            return value
        }
        return try CSVLoader.number(text(in: bytes), path: path, line: line, column: column)
    }
}

struct CSVReader {
    /// The whole file.
    let bytes: UnsafeRawBufferPointer
    /// For messages.
    let path: String
    /// The next byte to read.
    var position = 0
    /// The 1-based line of `position`.
    var line = 1

    init(bytes: UnsafeRawBufferPointer, path: String) {
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
        var cells: [CSVCell] = []
        guard let line = try next(into: &cells) else { return nil }
        return (line, cells.map { $0.text(in: bytes) })
    }

    /// Reads the next non-blank record into `cells` (emptied first, its
    /// room kept, so a loop over rows allocates nothing for unquoted
    /// cells) and returns the line it starts on, or nil at the end.
    mutating func next(into cells: inout [CSVCell]) throws -> Int? {
        cells.removeAll(keepingCapacity: true)
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
        while true {
            while position < bytes.count && (bytes[position] == Self.space || bytes[position] == Self.tab) { position += 1 }
            if position < bytes.count && bytes[position] == Self.quote {
                cells.append(.quoted(try quotedField(recordLine: start, column: cells.count + 1)))
            } else {
                let fieldStart = position
                while position < bytes.count && bytes[position] != Self.comma && bytes[position] != Self.newline { position += 1 }
                var fieldEnd = position
                while fieldEnd > fieldStart && isBlank(bytes[fieldEnd - 1]) { fieldEnd -= 1 }
                cells.append(.plain(fieldStart..<fieldEnd))
            }
            if position < bytes.count && bytes[position] == Self.comma {
                position += 1
                continue
            }
            if position < bytes.count {  // a newline
                position += 1
                line += 1
            }
            return start
        }
    }

    /// Moves past the next non-blank record as `next` reads it, without
    /// making its fields; false at the end. It never throws: where `next`
    /// would (a quote that never closes, text after a closing quote), it
    /// stops at the record's end or the file's, and `next` reports it.
    mutating func skip() -> Bool {
        while true {
            var scan = position
            while scan < bytes.count && isBlank(bytes[scan]) { scan += 1 }
            if scan == bytes.count { position = scan; return false }
            if bytes[scan] != Self.newline { break }
            position = scan + 1
            line += 1
        }
        while true {
            while position < bytes.count && (bytes[position] == Self.space || bytes[position] == Self.tab) { position += 1 }
            if position < bytes.count && bytes[position] == Self.quote {
                position += 1
                while position < bytes.count {
                    let byte = bytes[position]
                    position += 1
                    if byte == Self.quote {
                        if position < bytes.count && bytes[position] == Self.quote { position += 1; continue }
                        break
                    }
                    if byte == Self.newline { line += 1 }
                }
            }
            while position < bytes.count && bytes[position] != Self.comma && bytes[position] != Self.newline { position += 1 }
            if position < bytes.count && bytes[position] == Self.comma {
                position += 1
                continue
            }
            if position < bytes.count {
                position += 1
                line += 1
            }
            return true
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

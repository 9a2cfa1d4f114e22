import NNCore
import NNData
import XCTest

final class CSVLoaderTests: XCTestCase {
    var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir = nil }

    // MARK: - Accepted input

    func testNumericClassLabels() throws {
        let path = try dir.write("a,label,b\n1,0,2\n3,2,4.5\n-1,1,1e2\n", to: "numeric.csv")
        let data = try CSVLoader.load(path: path, label: "label", mode: .classes)
        XCTAssertEqual(data.name, path)
        XCTAssertEqual(data.count, 3)
        XCTAssertEqual(data.featureCount, 2)
        XCTAssertEqual(Array(data.features), [1, 2, 3, 4.5, -1, 100])
        XCTAssertEqual(data.labels, [0, 2, 1])
        XCTAssertEqual(data.labelWidth, 1)
        XCTAssertNil(data.classNames)
        XCTAssertEqual(data.location(ofSample: 0), "\(path):2")
        XCTAssertEqual(data.location(ofSample: 2), "\(path):4")
    }

    func testNamedClassLabels() throws {
        let path = try dir.write("x,species\n1,virginica\n2,setosa\n3,versicolor\n4,setosa\n", to: "named.csv")
        let data = try CSVLoader.load(path: path, label: "species", mode: .classes)
        XCTAssertEqual(data.classNames, ["setosa", "versicolor", "virginica"])
        XCTAssertEqual(data.labels, [2, 0, 1, 0])
        XCTAssertEqual(Array(data.features), [1, 2, 3, 4])

        // A test set read with the training set's names keeps their numbering,
        // even when it lacks a class.
        let test = try dir.write("x,species\n5,virginica\n6,virginica\n", to: "test.csv")
        let loaded = try CSVLoader.load(path: test, label: "species", mode: .classes, classNames: data.classNames)
        XCTAssertEqual(loaded.labels, [2, 2])
        XCTAssertEqual(loaded.classNames, ["setosa", "versicolor", "virginica"])

        // Integer labels with known names are indices into them.
        let indexed = try dir.write("x,species\n5,2\n6,0\n", to: "indexed.csv")
        XCTAssertEqual(try CSVLoader.load(path: indexed, label: "species", mode: .classes,
                                          classNames: data.classNames).labels, [2, 0])
    }

    func testMixedLabelsAreNames() throws {
        let path = try dir.write("x,y\n1,b\n2,1.5\n3,a\n", to: "mixed.csv")
        let data = try CSVLoader.load(path: path, label: "y", mode: .classes)
        XCTAssertEqual(data.classNames, ["1.5", "a", "b"])
        XCTAssertEqual(data.labels, [2, 0, 1])
    }

    func testRegression() throws {
        let path = try dir.write("rooms,price,age\n3,250.5,10\n4,-1e3,0.5\n", to: "houses.csv")
        let data = try CSVLoader.load(path: path, label: "price", mode: .values)
        XCTAssertEqual(Array(data.features), [3, 10, 4, 0.5])
        XCTAssertEqual(data.labels, [250.5, -1000])
        XCTAssertEqual(data.labelWidth, 1)
        XCTAssertNil(data.classNames)
    }

    func testQuotesWhitespaceCRLFAndBlankLines() throws {
        let text = "\u{FEFF}\"first col\" , \"la,bel\"\r\n\r\n  1.5 ,\"a \"\"quoted\"\" name\"\r\n   \r\n\"2\",  plain  \r\n\n\"3\",\"multi\nline\"\n4,plain"
        let path = try dir.write(text, to: "quoted.csv")
        let data = try CSVLoader.load(path: path, label: "la,bel", mode: .classes)
        XCTAssertEqual(Array(data.features), [1.5, 2, 3, 4])
        XCTAssertEqual(data.classNames, ["a \"quoted\" name", "multi\nline", "plain"])
        XCTAssertEqual(data.labels, [0, 2, 1, 2])
        // Lines count blank lines and the line break inside quotes.
        XCTAssertEqual((0..<4).map { data.location(ofSample: $0) }, ["\(path):3", "\(path):5", "\(path):7", "\(path):9"])
        // Locations survive slicing.
        XCTAssertEqual(data.split(validationFraction: 0.5).validation.location(ofSample: 1), "\(path):9")
    }

    func testLoadFeaturesIgnoresTheLabel() throws {
        let path = try dir.write("a,label,b\n1,x,2\n3,y,4\n", to: "predict.csv")
        let data = try CSVLoader.loadFeatures(path: path, excluding: ["label"])
        XCTAssertEqual(Array(data.features), [1, 2, 3, 4])
        XCTAssertEqual(data.featureCount, 2)
        XCTAssertEqual(data.count, 2)
        XCTAssertEqual(data.labelWidth, 0)
        let unlabeled = try dir.write("a,b\n1,2\n", to: "unlabeled.csv")
        XCTAssertEqual(Array(try CSVLoader.loadFeatures(path: unlabeled, excluding: ["label"]).features), [1, 2])
    }

    // MARK: - Errors

    func testNonNumericCell() throws {
        let path = try dir.write("sepal,petal_width,species\n1,2,a\n\n3,n/a,b\n", to: "bad.csv")
        assertUserError(try CSVLoader.load(path: path, label: "species", mode: .classes),
                        contains: ["\(path):4: column 'petal_width': 'n/a' is not a number"])
        let empty = try dir.write("a,y\n1,0\n,1\n", to: "empty-cell.csv")
        assertUserError(try CSVLoader.load(path: empty, label: "y", mode: .classes),
                        contains: ["\(empty):3: column 'a' is empty"])
        let nan = try dir.write("a,y\nnan,0\n", to: "nan.csv")
        assertUserError(try CSVLoader.load(path: nan, label: "y", mode: .classes),
                        contains: ["\(nan):2: column 'a': 'nan' is not a finite"])
        let target = try dir.write("a,y\n1,cheap\n", to: "target.csv")
        assertUserError(try CSVLoader.load(path: target, label: "y", mode: .values),
                        contains: ["\(target):2: column 'y': 'cheap' is not a number"])
    }

    func testRaggedRow() throws {
        let path = try dir.write("a,b,y\n1,2,0\r\n1,2\r\n", to: "ragged.csv")
        assertUserError(try CSVLoader.load(path: path, label: "y", mode: .classes),
                        contains: ["\(path):3: 2 fields but the header has 3"])
        let long = try dir.write("a,y\n1,2,3\n", to: "long.csv")
        assertUserError(try CSVLoader.load(path: long, label: "y", mode: .classes),
                        contains: ["\(long):2: 3 fields but the header has 2"])
    }

    func testMissingLabelColumn() throws {
        let path = try dir.write("sepal_length,petal_width,species\n1,2,a\n", to: "iris.csv")
        assertUserError(try CSVLoader.load(path: path, label: "specie", mode: .classes),
                        contains: ["\(path):1", "'specie'", "sepal_length, petal_width, species", "did you mean 'species'?"])
        assertUserError(try CSVLoader.load(path: path, label: "colour", mode: .classes),
                        contains: ["\(path):1", "'colour'"])
        let onlyLabel = try dir.write("y\n1\n", to: "only-label.csv")
        assertUserError(try CSVLoader.load(path: onlyLabel, label: "y", mode: .classes),
                        contains: [onlyLabel, "no feature columns"])
    }

    func testUnknownClassName() throws {
        let path = try dir.write("x,species\n1,setosa\n2,virginica\n3,versicolour\n", to: "test.csv")
        assertUserError(try CSVLoader.load(path: path, label: "species", mode: .classes,
                                           classNames: ["setosa", "versicolor", "virginica"]),
                        contains: ["\(path):4: column 'species': unknown class 'versicolour'", "did you mean 'versicolor'?"])
        let index = try dir.write("x,species\n1,0\n2,3\n", to: "index.csv")
        assertUserError(try CSVLoader.load(path: index, label: "species", mode: .classes,
                                           classNames: ["setosa", "versicolor", "virginica"]),
                        contains: ["\(index):3: column 'species': '3' is not a class index below 3"])
    }

    func testNonIntegerClassLabel() throws {
        let path = try dir.write("x,species\n1,0\n2,1.5\n3,1\n", to: "fraction.csv")
        assertUserError(try CSVLoader.load(path: path, label: "species", mode: .classes),
                        contains: ["\(path):3: column 'species': '1.5' is not a class index (a non-negative integer)"])
        let negative = try dir.write("x,species\n1,-1\n", to: "negative.csv")
        assertUserError(try CSVLoader.load(path: negative, label: "species", mode: .classes),
                        contains: ["\(negative):2: column 'species': '-1' is not a class index"])
        let blank = try dir.write("x,species\n1,0\n2,\n", to: "blank-label.csv")
        assertUserError(try CSVLoader.load(path: blank, label: "species", mode: .classes),
                        contains: ["\(blank):3: column 'species' is empty"])
    }

    func testEmptyFileAndHeaderOnly() throws {
        let empty = try dir.write("", to: "empty.csv")
        assertUserError(try CSVLoader.load(path: empty, label: "y", mode: .classes), contains: [empty, "empty"])
        let blank = try dir.write("\n \r\n", to: "blank.csv")
        assertUserError(try CSVLoader.load(path: blank, label: "y", mode: .classes), contains: [blank, "empty"])
        let header = try dir.write("a,y\n\n", to: "header.csv")
        assertUserError(try CSVLoader.load(path: header, label: "y", mode: .classes),
                        contains: [header, "no data rows"])
        assertUserError(try CSVLoader.loadFeatures(path: header), contains: [header, "no data rows"])
    }

    func testQuoteErrorsAndMissingFile() throws {
        let open = try dir.write("a,y\n\"1,0\n", to: "open.csv")
        assertUserError(try CSVLoader.load(path: open, label: "y", mode: .classes),
                        contains: ["\(open):2: field 1 opens a quote that never closes"])
        let trailing = try dir.write("a,y\n\"1\"x,0\n", to: "trailing.csv")
        assertUserError(try CSVLoader.load(path: trailing, label: "y", mode: .classes),
                        contains: ["\(trailing):2: field 1 has text after its closing quote"])
        let missing = dir.path + "/missing.csv"
        assertUserError(try CSVLoader.load(path: missing, label: "y", mode: .classes), contains: [missing, "cannot open"])
    }

    func testDuplicateLabelColumn() throws {
        let path = try dir.write("y,a,y\n1,2,3\n", to: "dup.csv")
        assertUserError(try CSVLoader.load(path: path, label: "y", mode: .values),
                        contains: ["\(path):1: the label column 'y' appears 2 times"])
    }

    // MARK: - Streaming

    /// Reads `path` through a `Stream` in chunks of `chunk` rows, as a cache write does.
    private func streamed(_ path: String, label: String, mode: LabelMode, classNames: [String]? = nil,
                          limit: Int? = nil, chunk: Int = 2) throws -> (features: [Float], labels: Dataset) {
        let stream = try CSVLoader.Stream(path: path, label: label, mode: mode, classNames: classNames, limit: limit)
        var features: [Float] = []
        var done = 0
        while done < stream.count {
            let n = min(chunk, stream.count - done)
            var rows = [Float](repeating: .nan, count: n * stream.featureCount)
            try rows.withUnsafeMutableBufferPointer { try stream.read(into: $0) }
            features += rows
            done += n
        }
        let labels = try stream.labelsOnly()
        XCTAssertEqual(labels.count, stream.count)
        return (features, labels)
    }

    func testAStreamReadsWhatLoadingReadsAndShapeCountsItsRows() throws {
        let quoted = "\u{FEFF}\"first col\" , \"la,bel\"\r\n\r\n  1.5 ,\"a \"\"quoted\"\" name\"\r\n   \r\n\"2\",  plain  \r\n\n\"3\",\"multi\nline\"\n4,plain\n5,\"a \"\"quoted\"\" name\""
        let cases: [(text: String, label: String, mode: LabelMode, classNames: [String]?, limit: Int?)] = [
            (quoted, "la,bel", .classes, nil, nil),
            (quoted, "la,bel", .classes, nil, 3),  // the names come from every row, the limit or not
            ("a,y,b\n1,2,3\n4,0,6\n7,1,9\n", "y", .classes, nil, nil),
            ("a,y,b\n1,2,3\n4,0,6\n7,1,9\n", "y", .classes, ["p", "q", "r"], 2),
            ("a,y\n1,q\n2,p\n", "y", .classes, ["p", "q", "r"], nil),
            ("a,y\n1,2.5\n2,-1e3\n\n3,7", "y", .values, nil, nil),
        ]
        for (k, item) in cases.enumerated() {
            let path = try dir.write(item.text, to: "stream-\(k).csv")
            var loaded = try CSVLoader.load(path: path, label: item.label, mode: item.mode, classNames: item.classNames)
            if let limit = item.limit { loaded = loaded.prefix(limit) }
            let (features, read) = try streamed(path, label: item.label, mode: item.mode, classNames: item.classNames, limit: item.limit)
            XCTAssertEqual(features, Array(loaded.features), "case \(k)")
            XCTAssertEqual(read.featureNames, loaded.featureNames, "case \(k)")
            XCTAssertEqual(read.labels, loaded.labels, "case \(k)")
            XCTAssertEqual(read.classNames, loaded.classNames, "case \(k)")
            XCTAssertEqual((0..<read.count).map(read.location(ofSample:)), (0..<loaded.count).map(loaded.location(ofSample:)), "case \(k)")
            let shape = try XCTUnwrap(CSVLoader.shape(path: path, label: item.label, limit: item.limit))
            XCTAssertEqual(shape.count, loaded.count, "case \(k)")
            XCTAssertEqual(shape.featureCount, loaded.featureCount, "case \(k)")
        }
        XCTAssertNil(CSVLoader.shape(path: dir.path + "/missing.csv", label: "y"))
        XCTAssertNil(CSVLoader.shape(path: try dir.write("a,b\n1,2\n", to: "nolabel.csv"), label: "y"))
    }

    func testAStreamRefusesWhatLoadingRefusesWithTheSameMessage() throws {
        let rows = (0..<30).map { "\($0),\($0 % 3),\($0 * 2)" }
        func file(_ name: String, header: String = "a,y,b", _ edit: (inout [String]) -> Void) throws -> String {
            var lines = rows
            edit(&lines)
            return try dir.write(([header] + lines).joined(separator: "\n") + "\n", to: name)
        }
        let cases: [(path: String, mode: LabelMode, classNames: [String]?, text: String)] = [
            (try file("number.csv") { $0[20] = "x,1,2" }, .classes, nil, ":22: column 'a'"),
            (try file("width.csv") { $0[25] = "1,2" }, .classes, nil, "2 fields but the header has 3"),
            // A label error before a feature error: the feature's is reported, as the labels come after the rows.
            (try file("both.csv") { $0[3] = "1,,2"; $0[28] = "1,2,z" }, .classes, nil, ":30: column 'b'"),
            (try file("empty-label.csv") { $0[3] = "1,,2" }, .classes, nil, ":5: column 'y' is empty"),
            (try file("target.csv") { $0[2] = "1,t,2"; $0[9] = "1,2,w" }, .values, nil, ":11: column 'b'"),
            (try file("target-only.csv") { $0[2] = "1,t,2" }, .values, nil, ":4: column 'y': 't' is not a number"),
            (try file("unknown.csv") { $0[7] = "1,fox,2" }, .classes, ["0", "1", "2"], "unknown class 'fox'"),
            (try file("index.csv") { $0[7] = "1,2.5,2" }, .classes, nil, "'2.5' is not a class index"),
            (try file("quote.csv") { $0[29] = "\"1,2,3" }, .classes, nil, "opens a quote that never closes"),
            (try file("label.csv", header: "a,z,b") { _ in }, .classes, nil, "no column named 'y'"),
            (try file("header-only.csv") { $0 = [] }, .classes, nil, "no data rows"),
            (try dir.write("", to: "empty.csv"), .classes, nil, "the file is empty"),
            (dir.path, .classes, nil, "is a directory"),
            (dir.path + "/missing.csv", .classes, nil, "cannot open the CSV file"),
        ]
        for item in cases {
            var expected = ""
            XCTAssertThrowsError(try CSVLoader.load(path: item.path, label: "y", mode: item.mode, classNames: item.classNames)) {
                expected = ($0 as? UserError)?.message ?? "\($0)"
            }
            XCTAssertTrue(expected.contains(item.text), expected)
            XCTAssertThrowsError(try streamed(item.path, label: "y", mode: item.mode, classNames: item.classNames, limit: 12)) {
                XCTAssertEqual(($0 as? UserError)?.message, expected)
            }
        }
    }

    /// A pipe is not mapped: the stream refuses it at once (opening it does
    /// not wait for a writer), `shape` has none, and loading still reads it.
    func testAPipeIsRefusedByTheStreamWithoutWaiting() throws {
        let path = dir.path + "/pipe.csv"
        XCTAssertEqual(mkfifo(path, 0o600), 0)
        XCTAssertFalse(CSVLoader.canStream(path))
        XCTAssertNil(CSVLoader.shape(path: path, label: "y"))
        assertUserError(try CSVLoader.Stream(path: path, label: "y", mode: .classes), contains: [path, "not a regular file"])
    }
}

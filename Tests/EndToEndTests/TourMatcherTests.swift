// The tour runner's matcher must be able to fail: changed words, numbers
// beyond the tolerance and missing lines are mismatches; numbers within it,
// timings, `...` and the block directives are not.

import XCTest

final class TourMatcherTests: XCTestCase {
    let epoch = "422/422 [==============================] - 7s 17ms/step - loss: 0.4443 - accuracy: 0.8407 - 7384 samples/s"

    func match(_ expected: [String], _ actual: [String], _ options: TourOptions = TourOptions()) -> String? {
        TourMatcher.mismatch(expected: expected, actual: actual, options: options)
    }

    func testIdenticalOutputMatches() {
        XCTAssertNil(match(["Epoch 1/10", epoch], ["Epoch 1/10", epoch]))
    }

    func testChangedTextIsAMismatch() {
        XCTAssertNotNil(match(["test - loss: 0.5000 - accuracy: 0.5000"], ["test - loss: 0.5000 - acuracy: 0.5000"]))
        XCTAssertNotNil(match(["saved runs/a/model.safetensors"], ["saved runs/b/model.safetensors"]))
        XCTAssertNotNil(match(["a line"], ["a line", "one more"]))
        XCTAssertNotNil(match(["a line", "one more"], ["a line"]))
        XCTAssertNotNil(match(["exit 0"], ["exit 0 now"]))
    }

    func testNumbersWithinTheToleranceMatch() {
        // 5 % relative, or 0.02 absolute.
        XCTAssertNil(match(["accuracy: 0.9920"], ["accuracy: 0.9900"]))
        XCTAssertNil(match(["loss: 0.0099"], ["loss: 0.0250"]))
        XCTAssertNil(match(["misclassifies 446 of 1000"], ["misclassifies 460 of 1000"]))
    }

    func testNumbersBeyondTheToleranceAreAMismatch() {
        XCTAssertNotNil(match(["accuracy: 0.9920"], ["accuracy: 0.9000"]))
        XCTAssertNotNil(match(["misclassifies 446 of 1000"], ["misclassifies 480 of 1000"]))
        XCTAssertNotNil(match(["Epoch 1/10"], ["Epoch 1/20"]))
        XCTAssertNotNil(match(["learning_rate 0.1"], ["learning_rate 0.2"]))
        XCTAssertNotNil(match(["1e+03 steps"], ["2e+03 steps"]))
        XCTAssertNotNil(match(["x -2.5"], ["x 2.5"]))
        XCTAssertNotNil(match(["4 numbers 5"], ["4 numbers"]))
    }

    func testAPerBlockToleranceOverridesTheDefault() throws {
        var loose = TourOptions()
        try loose.apply(" tolerance 0.5 ")
        XCTAssertNil(match(["accuracy: 0.8"], ["accuracy: 0.5"], loose))
        var tight = TourOptions()
        try tight.apply("tolerance 0 0.001")
        XCTAssertNotNil(match(["accuracy: 0.9920"], ["accuracy: 0.9900"], tight))
        XCTAssertNil(match(["accuracy: 0.9920"], ["accuracy: 0.9925"], tight))
    }

    func testTimingsAreFree() {
        let slow = "422/422 [==============================] - 70s 170ms/step - loss: 0.4443 - accuracy: 0.8407 - 84 samples/s"
        XCTAssertNil(match([epoch], [slow]))
        XCTAssertNil(match(["took 0.5 s"], ["took 0.5 s"]))
        XCTAssertNil(match(["took 12s, 3µs"], ["took 1s, 9µs"]))
        XCTAssertNotNil(match(["3 steps"], ["9 steps"]), "a word that starts with s is not a unit")
    }

    func testElisionMatchesAnyNumberOfLines() {
        let expected = ["Epoch 1/3", "...", "test - accuracy: 0.9"]
        XCTAssertNil(match(expected, ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3", "test - accuracy: 0.9"]))
        XCTAssertNil(match(expected, ["Epoch 1/3", "test - accuracy: 0.9"]))
        XCTAssertNotNil(match(expected, ["Epoch 1/3", "Epoch 2/3", "test - accuracy: 0.5"]))
        XCTAssertNotNil(match(expected, ["Epoch 2/3", "test - accuracy: 0.9"]))
        XCTAssertNil(match(["...", "last"], ["a", "b", "last"]))
        XCTAssertNil(match(["first", "..."], ["first"]))
        XCTAssertNil(match(["a", "...", "b", "...", "c"], ["a", "b", "x", "b", "c"]))
    }

    func testNumbersFreeAndMarkedLines() throws {
        var free = TourOptions()
        try free.apply("numbers free")
        XCTAssertNil(match(["stopped at epoch 1, step 18/422"], ["stopped at epoch 2, step 301/422"], free))
        XCTAssertNotNil(match(["stopped at epoch 1"], ["halted at epoch 1"], free), "free numbers, not free words")
        var marked = TourOptions()
        try marked.apply("free \"step\"; any \"CRC-32C\"")
        XCTAssertNil(match(["at step 18/422", "epoch 1"], ["at step 301/422", "epoch 1"], marked))
        XCTAssertNotNil(match(["at step 18/422", "epoch 1"], ["at step 18/422", "epoch 2"], marked))
        XCTAssertNil(match(["parameters: CRC-32C 00d386c2, identical"], ["parameters: CRC-32C ab7f0012, identical on 4"], marked))
    }

    func testTrailingSpacesAreIgnored() {
        XCTAssertNil(match(["value 3   "], ["value 3"]))
    }

    func testTheDocumentParserReadsBlocksCommandsAndDirectives() throws {
        let text = """
            Intro.

            ```
            $ not a command block
            ```

            <!-- tour: tolerance 0.1; free "samples" -->
            ```console
            $ nntrain train --config a.yaml
            line one
            ...
            $ echo hi
            hi
            ```

            ```console
            $ true
            ```
            """
        let blocks = try TourDocument.parse(text)
        XCTAssertEqual(blocks.count, 2)
        XCTAssertEqual(blocks[0].commands.map(\.command), ["nntrain train --config a.yaml", "echo hi"])
        XCTAssertEqual(blocks[0].commands[0].expected, ["line one", "..."])
        XCTAssertEqual(blocks[0].commands[0].line, 9)
        XCTAssertEqual(blocks[0].options.relative, 0.1)
        XCTAssertEqual(blocks[0].options.freeNumbersIn, ["samples"])
        XCTAssertEqual(blocks[1].options, TourOptions(), "directives bind to one block")
        XCTAssertNil(match(["compute: cpu (OpenBLAS, 2 threads) per rank"], ["compute: cuda (H200) per rank"]), "the machine's own line")
        XCTAssertEqual(blocks[1].commands[0].expected, [])
        XCTAssertThrowsError(try TourDocument.parse("<!-- tour: tolerence 0.1 -->\n```console\n$ true\n```"))
        XCTAssertThrowsError(try TourDocument.parse("```console\noutput first\n```"))
    }
}

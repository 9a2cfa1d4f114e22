// The nntrain executable: everything lives in NNTrainApp.

import NNTrainApp

runCommandLine(Array(CommandLine.arguments.dropFirst()))

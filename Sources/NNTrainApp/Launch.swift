// Wiring a training job together: communicator, accelerator, the
// configuration every rank agrees on, data, trainer, and rank 0's observers.

import Foundation
import NNCore
import NNData
import NNDistributed
import NNTraining

/// Where `--resume` continues from.
enum ResumeChoice: Equatable {
    /// The newest valid checkpoint of the run.
    case latest
    /// This checkpoint file.
    case file(String)
}

enum Launch {
    /// This process's communicator: MPI under a launcher, else a world of
    /// one; with a watchdog's settings MPI's collectives are watched. Open
    /// MPI is prepared for `allreduce` first; the plan says how the
    /// gradients' algorithm is then settled (`chooseAllreduce`).
    static func communicator(watchdog: WatchdogSettings? = nil,
                             allreduce: AllreduceRequest = .measure) -> (any Communicator, AllreducePlan) {
        guard Environment.launchedByMPI else { return (LocalCommunicator(), .measure) }
        let plan = Environment.applyAllreduceDefaults(allreduce)
        Environment.applyOversubscriptionDefaults(Environment.hostLoadAtLaunch)
        return (MPICommunicator(watchdog: watchdog), plan)
    }

    /// Trains as one rank of a job, as the validated command asks, and returns the exit status.
    static func train(_ job: Train) -> Int32 {
        let stop = SignalStop()
        // The watchdog's thread reads the views when it ends the job.
        let views = LockedBox<RunViews?>(nil)
        var watchdog: WatchdogSettings?
        if job.collectiveTimeout > 0 {
            // The watchdog ends a stalled job from its own thread: the line,
            // and run.json's exit reason, come from here before the exit.
            watchdog = WatchdogSettings(timeout: job.collectiveTimeout) { message, reports in
                if reports { Console.error(message) }
                views.value?.failed(message)
                JobEnd.exitStalled()
            }
            watchdog?.onNote = { Console.warning($0) }
            watchdog?.stopRequested = { stop.isRequested }
        }
        let (world, plan) = communicator(watchdog: watchdog, allreduce: job.allreduce)
        defer { world.finalize() }
        let console = Console(enabled: world.isCoordinator,
                              drawsBar: Environment.drawsProgressBar(underLauncher: Environment.launchedByMPI))
        if let problem = (world as? MPICommunicator)?.watchdogProblem { console.warn(problem) }
        // Rank 0 (which always trains) releases the ranks that stand by
        // with the job's exit status, however training ends (a rank that
        // crashes, or that its watchdog ends, leaves them to the launcher).
        var standingBy: [Int] = []
        let status = trainOrStandBy(job, world: world, plan: plan, stop: stop, views: views, console: console,
                                    standingBy: &standingBy)
        if !standingBy.isEmpty, world.isCoordinator, let mpi = world as? MPICommunicator {
            let timeout = job.collectiveTimeout > 0 ? job.collectiveTimeout : nil
            let silent = mpi.release(standingBy: standingBy, status: status, timeout: timeout)
            if !silent.isEmpty {
                // MPI_Finalize would wait for them for ever.
                Console.error(mpi.unansweredRelease(silent, timeout: job.collectiveTimeout))
                JobEnd.exitStalled()
            }
        }
        return status
    }

    /// On a rank that trains: trains, and returns the exit status (rank 0's
    /// `standingBy` lists the ranks that stand by, as soon as it is settled).
    /// On a rank that stands by: waits for rank 0's word, and returns the
    /// status it sends.
    private static func trainOrStandBy(_ job: Train, world: any Communicator, plan: AllreducePlan, stop: SignalStop,
                                       views: LockedBox<RunViews?>, console: Console, standingBy: inout [Int]) -> Int32 {
        var communicator = world
        do {
            let trainer: Trainer
            var facts: JobFacts
            switch try prepare(job, communicator: world, console: console, standingBy: &standingBy) {
            case .standingBy(let mpi):
                let end = mpi.standBy { stop.isRequested }
                if let problem = end.problem { Console.error(problem) }
                return end.status
            case .training(let made, let madeFacts):
                (trainer, facts) = (made, madeFacts)
            }
            communicator = trainer.communicator
            // Before the first step, with the gradient buffer's size known.
            facts.allreduce = chooseAllreduce(plan, count: trainer.model.parameterCount,
                                              resuming: job.resume != nil, runDirectory: trainer.runDirectory,
                                              communicator: communicator)
            facts.sharding = try chooseSharding(job.shardingRequest, trainer: trainer, communicator: communicator)
            console.sharding = facts.sharding
            facts.overlap = chooseOverlap(job.overlapAllreduce, trainer: trainer, communicator: communicator)
            console.allreduce = facts.allreduce
            console.overlap = facts.overlap
            let made = RunViews(job: job, trainer: trainer, facts: facts, console: console, communicator: communicator)
            views.value = made
            // A rank that stands by asks rank 0 to stop, which then asks the others at its next poll.
            var stopRequest: any StopRequest = stop
            if !standingBy.isEmpty, communicator.isCoordinator, let mpi = world as? MPICommunicator {
                stopRequest = StopFromStandingBy(stop, world: mpi)
            }
            _ = try trainer.run(observers: made.observers, stop: stopRequest)
            return 0
        } catch let error as UserError {
            // Errors after start-up are collective decisions (every rank saw
            // the same values), so every rank stops here; rank 0 says why.
            if communicator.isCoordinator { Console.error(error.message) }
            views.value?.failed(error.message)
            return 2
        } catch let failure as CollectiveFailure {
            if let message = failure.message { Console.error(message) }
            views.value?.failed(failure.message ?? "another rank failed")
            return 2
        } catch {
            Console.error("\(error)")
            views.value?.failed("\(error)")
            return 1
        }
    }

    /// What start-up leaves a rank with.
    enum Prepared {
        /// The trainer, over the ranks that train, and what the run records.
        case training(Trainer, JobFacts)
        /// This rank stands by (see `MPICommunicator.standBy`), on this world.
        case standingBy(MPICommunicator)
    }

    /// Everything before the first step: device, configuration (from a
    /// checkpoint when resuming), agreement across ranks, which ranks train
    /// (`standingBy`: the others, once settled), data, trainer.
    static func prepare(_ job: Train, communicator world: any Communicator, console: Console,
                        standingBy: inout [Int]) throws -> Prepared {
        var communicator = world
        let load = Environment.hostLoad(communicator)
        if let mpi = communicator as? MPICommunicator {
            // Every rank must wait alike: one that asks to yield makes all yield.
            let wanted = try collectively(communicator) { try Environment.collectiveWait() }
            let kind = communicator.allGather(UInt64(wanted.kind)).max().map(Int.init) ?? wanted.kind
            mpi.wait = kind == wanted.kind ? wanted : .yielding(.yieldOnly)
        }
        if let note = load.note { console.line(note) }
        let threads = Environment.blasThreads(localRanks: communicator.localSize, oversubscribed: load.isOversubscribed)
        let (accelerator, deviceNote) = try collectively(communicator) {
            try Devices.open(job.device, localRank: communicator.localRank, cpuThreads: threads.count, allowTF32: job.allowTF32)
        }
        console.computeNote = threads.reason + (deviceNote.isEmpty ? "" : "; " + deviceNote)
        var facts = JobFacts(device: job.device.rawValue + (deviceNote.isEmpty ? "" : " (\(deviceNote))"),
                             blasThreads: accelerator.isHostMemory ? threads.count : nil,
                             hostLoad: (ranks: load.ranks, cores: load.cores))

        var runDirectory = ""
        var checkpoint: ModelSnapshot?
        if let resume = job.resume {
            (checkpoint, runDirectory) = try readCheckpoint(resume, job: job, communicator: communicator, console: console)
        }
        let config: RunConfig = try collectively(communicator) {
            let base = try checkpoint.map(\.config) ?? resolveConfig(job)
            let (config, changes) = job.overrides.apply(to: base)
            if checkpoint != nil && !changes.isEmpty {
                console.line("overriding the checkpoint's configuration: " + changes.joined(separator: ", "))
            }
            if let monitor = config.training.earlyStopping?.monitor, let problem = config.monitorProblem(monitor) {
                // Name what the user wrote: the flag, or the config's key.
                let flag = job.monitor != nil ? "--monitor"
                    : base.training.earlyStopping == nil ? "--early-stopping (it watches \(monitor))" : "training.early_stopping.monitor"
                throw UserError("\(flag): " + problem)
            }
            return config
        }
        try agree(on: config, communicator)
        if let mpi = communicator as? MPICommunicator,
           let plan = StandBy.settle(job.standBy, load: load, nodes: mpi.nodes, hostMemory: accelerator.isHostMemory,
                                     batchSize: config.training.batchSize, communicator: mpi) {
            console.line(plan.note)
            console.standingBy = plan.standingBy.count
            facts.standBy = plan
            standingBy = plan.standingBy
            // The ranks that train go on alone; the others stand by.
            guard let training = mpi.subset(plan.training) else { return .standingBy(mpi) }
            communicator = training
        }

        if job.resume == nil {
            try collectively(communicator) {
                guard communicator.isCoordinator else { return }
                if let given = job.runDir { try RunDirectories.checkUnused(given) }
                runDirectory = job.runDir ?? RunDirectories.fresh(name: RunDirectories.name(config: job.config, preset: job.preset))
            }
        }
        // Rank 0 proves the run directory writable before any data is loaded;
        // what it created is removed again when start-up fails.
        var created: String?
        try collectively(communicator) {
            guard communicator.isCoordinator else { return }
            created = try RunDirectoryCheck.prepare(runDirectory)
        }
        do {
            let (trainer, facts) = try prepareData(job, config: config, checkpoint: checkpoint, runDirectory: runDirectory,
                                                   accelerator: accelerator, facts: facts, communicator: communicator,
                                                   console: console)
            return .training(trainer, facts)
        } catch {
            if let created { RunDirectoryCheck.removeCreated(created, inside: runDirectory) }
            throw error
        }
    }

    /// The data, its agreement and the resources it needs, then the trainer.
    static func prepareData(_ job: Train, config: RunConfig, checkpoint: ModelSnapshot?, runDirectory: String,
                            accelerator: any Accelerator, facts: JobFacts, communicator: any Communicator,
                            console: Console) throws -> (Trainer, JobFacts) {
        // Memory and disk space are checked before loading when every rank
        // knows the data's shape (a cache file written earlier, IDX headers,
        // a CSV file's header and record count, synthetic sizes), else as
        // soon as it is loaded.
        var cache = Environment.dataCache(flag: job.dataCache).flatMap { DataCache.applies(to: config) ? $0 : nil }
        let objective = try config.objective()
        let expected = cache?.shape(for: config, objective: objective, includeTest: true, scaler: checkpoint?.scaler,
                                    classNames: checkpoint?.classNames) ?? DataShape.expected(config)
        let shapeKnown = communicator.allGather(expected == nil ? 0 : 1).allSatisfy { $0 == 1 }
        var exceedsMemory = false
        if shapeKnown, let expected {
            // A cache whose disk cannot hold the data is not used, on any
            // rank: every rank loads its own copy, and the memory check says
            // why if that cannot fit.
            let shortfall = try collectively(communicator) {
                try cache.flatMap { cache in
                    let path = try cache.path(for: config, objective: objective, includeTest: true,
                                              scaler: checkpoint?.scaler, classNames: checkpoint?.classNames).path
                    return cache.spaceShortfall(for: expected, path: path)
                }
            }
            if communicator.allGather(shortfall == nil ? 0 : 1).contains(1) { cache = nil }
            // IDX and CSV data is written to the cache without being loaded,
            // then mapped: it needs no memory of its own, however large.
            let mapped = cache != nil && DataCache.streams(config)
            exceedsMemory = try checkResources(config, shape: expected, datasetLoaded: false, datasetShared: cache != nil && !mapped,
                               datasetMapped: mapped, note: shortfall, job: job, runDirectory: runDirectory,
                               accelerator: accelerator, communicator: communicator, console: console)
            if let shortfall, communicator.localRank == 0 { Console.warning(shortfall + "; every rank loads the data itself") }
        }
        let data = try loadData(config, objective: objective, checkpoint: checkpoint, cache: cache,
                                communicator: communicator, console: console) {
            // The cache could not be used: every rank loads its own copy, which must fit.
            guard shapeKnown, let expected else { return }
            try checkResources(config, shape: expected, datasetLoaded: false, job: job, runDirectory: runDirectory,
                               accelerator: accelerator, communicator: communicator)
        }
        // Rows that do not all fit are paged in one by one, without read-ahead.
        if exceedsMemory { data.training.features.adviseRandomAccess() }
        try agree(on: data, communicator)
        if !shapeKnown {
            try checkResources(config, shape: DataShape(data), datasetLoaded: true, job: job, runDirectory: runDirectory,
                               accelerator: accelerator, communicator: communicator)
        }
        if let checkpoint, checkpoint.inputSize != data.featureCount {
            throw UserError("\(config.data.train.summary): the data has \(data.featureCount) features but the checkpoint's model takes \(checkpoint.inputSize)")
        }
        var start = checkpoint.map(StartingPoint.checkpoint) ?? .fresh
        if let path = job.initFrom, checkpoint == nil {
            try collectively(communicator) {
                guard communicator.isCoordinator else { return }
                let layout = Sequential.layout(inputSize: data.featureCount, layers: config.layerSpecs)
                start = .weights(try ModelFile.readWeights(path: path, layout: layout))
                console.line("initial weights from \(path)")
            }
        }
        let store = communicator.isCoordinator ? RunStore(directory: runDirectory, keep: job.keepCheckpoints) : nil
        let trainer = try collectively(communicator) {
            try Trainer(config: config, data: data, accelerator: accelerator, communicator: communicator,
                        start: start, schedule: job.schedule, store: store)
        }
        return (trainer, facts)
    }

    /// The prepared data. With a cache, the first rank on each host finds
    /// or writes the cache file while the others wait, then every rank maps
    /// it; when it cannot be written (or without a cache) each rank loads the data.
    static func loadData(_ config: RunConfig, objective: Objective, checkpoint: ModelSnapshot?, cache: DataCache?,
                         communicator: any Communicator, console: Console,
                         beforeEachRankLoads: () throws -> Void) throws -> PreparedData {
        let scaler = checkpoint?.scaler, classNames = checkpoint?.classNames
        if let cache {
            var outcome: DataCache.Outcome?
            try collectively(communicator) {
                guard communicator.localRank == 0 else { return }
                outcome = try cache.prepare(config, objective: objective, includeTest: true, scaler: scaler, classNames: classNames)
            }
            if case .unavailable(let reason) = outcome { Console.warning(reason + "; every rank loads the data itself") }
            let mapped = try collectively(communicator) {
                try cache.map(for: config, objective: objective, includeTest: true, scaler: scaler, classNames: classNames)
            }
            // Every rank learns whether all of them mapped the file.
            let everywhere = communicator.allGather(mapped == nil ? 0 : 1).allSatisfy { $0 == 1 }
            if everywhere, let mapped {
                let ranks = communicator.localSize
                console.dataNote = "mapped from the data cache" + (ranks > 1 ? ", one copy for the \(ranks) ranks on this host" : "")
                return mapped
            }
            try beforeEachRankLoads()
        }
        return try collectively(communicator) {
            try DataLoading.prepare(config, objective: objective, includeTest: true, scaler: scaler, classNames: classNames)
        }
    }

    /// Every rank checks that its host's memory holds what the run needs
    /// (its local ranks' copies together); rank 0 that the run directory's
    /// file system holds the checkpoints it keeps. Returns whether a mapped
    /// dataset is larger than the memory this rank may use.
    @discardableResult
    static func checkResources(_ config: RunConfig, shape: DataShape, datasetLoaded: Bool, datasetShared: Bool = false,
                               datasetMapped: Bool = false, note: String? = nil,
                               job: Train, runDirectory: String,
                               accelerator: any Accelerator, communicator: any Communicator,
                               console: Console? = nil) throws -> Bool {
        var exceeds = false
        try collectively(communicator) {
            try TrainingLimits.check(config, trainingSamples: shape.samples)
            let estimate = try MemoryBudget.estimate(config, shape: shape, worldSize: communicator.size)
            if let limit = try Environment.memoryLimit() ?? HostMemory.limit() {
                try MemoryBudget.check(estimate, ranksOnHost: communicator.localSize, limit: limit,
                                       datasetLoaded: datasetLoaded, datasetShared: datasetShared,
                                       datasetMapped: datasetMapped, modelOnDevice: !accelerator.isHostMemory,
                                       writesCheckpoints: communicator.isCoordinator, note: note)
                if datasetMapped, estimate.dataset > limit.bytes {
                    exceeds = true
                    console?.line("data: \(ByteCount.format(estimate.dataset)) as Float32, more than the \(ByteCount.format(limit.bytes)) \(limit.source) allows: it is mapped from the data cache and read from disk as each epoch needs it")
                }
            }
            guard communicator.isCoordinator else { return }
            try RunDirectoryCheck.checkSpace(runDirectory, config: config, parameterCount: estimate.parameterCount,
                                             keep: job.keepCheckpoints)
        }
        return exceeds
    }

    /// The configuration a new run names: a file, or a preset (the default one without either).
    static func resolveConfig(_ job: Train) throws -> RunConfig {
        if let path = job.config {
            return try ConfigReader.read(path: path)
        }
        return try flagged("--preset") { try Presets.config(job.preset ?? Presets.names[0]) }
    }

    /// Rank 0 finds and reads the checkpoint; every rank decodes the same bytes.
    static func readCheckpoint(_ resume: ResumeChoice, job: Train, communicator: any Communicator,
                               console: Console) throws -> (ModelSnapshot, String) {
        var bytes: [UInt8] = [], path = "", runDirectory = ""
        try collectively(communicator) {
            guard communicator.isCoordinator else { return }
            (path, runDirectory) = try RunDirectories.checkpoint(resume, runDirectory: job.runDir,
                                                                 name: RunDirectories.name(config: job.config, preset: job.preset),
                                                                 warn: console.warn)
            bytes = try readWhole(path)
        }
        bytes = communicator.broadcast(bytes: bytes)
        path = String(decoding: communicator.broadcast(bytes: Array(path.utf8)), as: UTF8.self)
        let snapshot = try collectively(communicator) {
            let snapshot = try ModelFile.decode(bytes: bytes, path: path)
            guard let position = snapshot.position else {
                throw UserError("\(path): a final model, not a checkpoint; resume from RUN/checkpoints/, or use --init-from to start from its weights")
            }
            console.line("resuming from \(path) (epoch \(position.epoch + 1), step \(position.stepInEpoch), global step \(position.globalStep))")
            return snapshot
        }
        return (snapshot, runDirectory)
    }

    /// Runs `body`, naming `flag` in front of the library's message, so the
    /// user sees which of their arguments it is about.
    static func flagged<T>(_ flag: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as UserError {
            throw UserError("\(flag): " + error.message)
        }
    }

    static func readWhole(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UserError("\(path): cannot read the file; check that it exists and is readable")
        }
        return [UInt8](data)
    }
}

/// A value two threads share, behind a lock.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value

    init(_ value: Value) { stored = value }

    var value: Value {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// What a run shows and leaves behind besides checkpoints: the console on
/// every rank (silent but on rank 0), and on rank 0 the metrics log, the run
/// record, TensorBoard files, the report and the perceptron's note.
final class RunViews {
    let observers: TrainingObservers
    private var record: RunRecord?
    private var report: ReportRefresher?

    init(job: Train, trainer: Trainer, facts: JobFacts, console: Console, communicator: any Communicator) {
        observers = TrainingObservers([console])
        if communicator.isCoordinator,
           let note = PerceptronNote(objective: trainer.objective, training: trainer.data.training, say: console.line) {
            observers.append(note)
        }
        guard let runDirectory = trainer.runDirectory else { return }
        observers.append(MetricsLog(runDirectory: runDirectory, warn: console.warn))
        let record = RunRecord(runDirectory: runDirectory, facts: facts, warn: console.warn)
        observers.append(record)
        self.record = record
        if job.tensorBoard { observers.append(TensorBoardLog(runDirectory: runDirectory, warn: console.warn)) }
        if !job.noReport {
            // The same BLAS threads as training: a CPU backend sets them
            // process-wide (a GPU run trains without them).
            let threads = facts.blasThreads ?? 1
            let report = ReportRefresher(runDirectory: runDirectory, accelerator: { CPUAccelerator(threads: threads) },
                                         warn: console.warn)
            observers.append(report)
            self.report = report
        }
    }

    /// The run ended with an error: run.json says so, and the last report stops reloading.
    func failed(_ message: String) {
        record?.ended(error: message)
        report?.runFailed()
    }
}

/// Naming and finding run directories under `runs/`.
enum RunDirectories {
    /// `fashion-mnist` for a preset, the file's base name for a config.
    static func name(config: String?, preset: String?) -> String {
        if let config { return URL(fileURLWithPath: config).deletingPathExtension().lastPathComponent }
        return preset ?? Presets.names[0]
    }

    /// `runs/NAME`, or `runs/NAME-2`, … : a new run never overwrites an old one.
    static func fresh(name: String) -> String {
        var candidate = "runs/\(name)"
        var n = 2
        while FileManager.default.fileExists(atPath: candidate) {
            candidate = "runs/\(name)-\(n)"
            n += 1
        }
        return candidate
    }

    /// A new run's `--run-dir` must not hold an earlier run: its metrics,
    /// checkpoints and records would mix with the new ones.
    static func checkUnused(_ directory: String) throws {
        let traces = ["metrics.jsonl", "run.json", "model.safetensors"].filter {
            FileManager.default.fileExists(atPath: directory + "/" + $0)
        } + (Checkpoints.list(directory).isEmpty ? [] : ["checkpoints/"])
        guard traces.isEmpty else {
            throw UserError("--run-dir: \(directory) holds an earlier run (\(traces.joined(separator: ", "))); continue it with --resume, or give a new directory")
        }
    }

    /// The checkpoint file and run directory to resume.
    static func checkpoint(_ resume: ResumeChoice, runDirectory: String?, name: String,
                           warn: (String) -> Void) throws -> (String, String) {
        switch resume {
        case .file(let path):
            guard FileManager.default.fileExists(atPath: path) else {
                throw UserError("--resume: \(path): no such file; give a checkpoint from RUN/checkpoints/")
            }
            let checkpoints = URL(fileURLWithPath: path).deletingLastPathComponent()
            return (path, runDirectory ?? checkpoints.deletingLastPathComponent().path)
        case .latest:
            let run = try runDirectory ?? latest(name: name)
            let (_, path) = try Checkpoints.latestValid(in: run, warn: warn)
            return (path, run)
        }
    }

    /// The most recent `runs/NAME*` that holds checkpoints.
    static func latest(name: String) throws -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "runs")) ?? []
        let runs = names.filter { $0 == name || $0.hasPrefix(name + "-") }.map { "runs/" + $0 }
            .filter { !Checkpoints.list($0).isEmpty }
        guard let newest = runs.max(by: { modified($0) < modified($1) }) else {
            throw UserError("--resume: no run of '\(name)' with checkpoints under runs/; pass --run-dir DIR of the run to resume")
        }
        return newest
    }

    private static func modified(_ path: String) -> Date {
        let latest = Checkpoints.directory(of: path) + "/latest"
        let attributes = try? FileManager.default.attributesOfItem(atPath: latest)
        return attributes?[.modificationDate] as? Date ?? .distantPast
    }
}

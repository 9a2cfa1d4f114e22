/// nntrain's release, as `nntrain --version` prints it and model files record it (`nntrain_version`).
public enum NNTrainVersion {
    /// Semantic version of this build.
    public static let string = "0.6.0"
}

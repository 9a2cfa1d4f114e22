/// nntrain's release, as `nntrain --version` prints it and run records store it.
public enum NNTrainVersion {
    /// Semantic version of this build.
    public static let string = "0.6.0"
}

"""The benchmark suite: the paper's comparison at small scale and its report."""

"""The only orchestration: inputs -> base case (built once) -> draws -> model -> outcomes ->
analyses. Owns the random-number generator and any parallelism; writes nothing."""

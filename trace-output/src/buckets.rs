//! The `hist()` and `lhist()` bucket indexes, the one definition that the BPF code generator
//! (`trace_codegen::abi` re-exports these) and the printing of histograms agree on. The
//! table of indexes and labels is in the crate documentation.

/// The largest index [`hist_index`] returns.
pub const HIST_MAX_INDEX: usize = 33;

/// The `hist()` bucket index of `v` (the table in this crate's documentation).
pub fn hist_index(v: i64) -> usize {
    if v < 0 {
        0
    } else if v == 0 {
        1
    } else {
        2 + (63 - v.leading_zeros() as usize).min(31)
    }
}

/// The `lhist()` bucket index of `v` (see this crate's documentation). `step` must be
/// positive.
pub fn lhist_index(v: i64, min: i64, max: i64, step: i64) -> usize {
    if v < min {
        0
    } else if v > max {
        (1 + max.wrapping_sub(min) / step) as usize
    } else {
        (1 + v.wrapping_sub(min) / step) as usize
    }
}

/// How many indexes an `lhist(_, min, max, step)` uses: `(max - min) / step + 2`.
pub fn lhist_buckets(min: i64, max: i64, step: i64) -> usize {
    (max.wrapping_sub(min) / step) as usize + 2
}

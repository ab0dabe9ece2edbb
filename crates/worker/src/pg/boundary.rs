//! Content-defined row-group boundaries, so that a re-dump's row groups (and with them every
//! column chunk's pages) start at the same rows as the last dump's wherever the rows did not
//! change: a row group ends at the first row, past a minimum size, whose first-column value
//! hashes to a candidate; a hard limit (the row group size) keeps memory bounded. A row
//! inserted or removed near the start then moves one boundary, not all of them. Pure, no I/O.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Share of the row group size a group reaches before a boundary may fall (1/8).
const MIN_SHARE: usize = 8;
/// Expected distance between candidate rows, as a share of the row group size past the
/// minimum (1/3): a group reaches the hard limit without a candidate e^(−(7/8)·3) ≈ 7 % of
/// the time.
const SPACING_SHARE: f64 = 1.0 / 3.0;
/// Rows written at a time without a boundary, so that the minimum and the hard limit are
/// noticed near where they are reached.
const PROBE_ROWS: usize = 1024;

/// What the writer does next with the rows of the current batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write this many rows.
    Write(usize),
    /// Write this many rows, then close the row group (a content-defined boundary).
    WriteThenCut(usize),
    /// Close the row group now (the hard limit).
    Cut,
}

/// Decides where row groups end, from the in-progress group's encoded size and row count and
/// the hashes of the rows still to write.
#[derive(Clone, Debug)]
pub struct Boundaries {
    min: usize,
    max: usize,
    /// Candidate rows have this many low hash bits zero; set when the group reaches the
    /// minimum, from how many rows that took, so the spacing follows the rows' size.
    bits: Option<u32>,
}

impl Boundaries {
    /// Boundaries for row groups of at most `row_group_bytes` encoded bytes.
    pub fn new(row_group_bytes: usize) -> Boundaries {
        Boundaries {
            min: (row_group_bytes / MIN_SHARE).max(1),
            max: row_group_bytes.max(1),
            bits: None,
        }
    }

    /// The next step for a group of `size` encoded bytes and `rows` rows, with `keys` the
    /// hashes of the batch's rows not written yet (non-empty).
    pub fn next(&mut self, size: usize, rows: usize, keys: &[u64]) -> Step {
        if size >= self.max {
            self.bits = None;
            return Step::Cut;
        }
        if size < self.min || rows == 0 {
            return Step::Write(keys.len().min(PROBE_ROWS));
        }
        let bits = *self.bits.get_or_insert_with(|| spacing_bits(rows));
        let mask = (1u64 << bits) - 1;
        let probe = &keys[..keys.len().min(PROBE_ROWS)];
        match probe.iter().position(|k| k & mask == 0) {
            Some(i) => {
                self.bits = None;
                Step::WriteThenCut(i + 1)
            }
            None => Step::Write(probe.len()),
        }
    }
}

/// Low bits a candidate's hash must have zero, for `rows_at_min` rows per minimum: an
/// expected spacing of at most [`SPACING_SHARE`] of the group size, rounded down to a power
/// of two so that the same rows give the same spacing in the next dump.
fn spacing_bits(rows_at_min: usize) -> u32 {
    let spacing = rows_at_min as f64 * MIN_SHARE as f64 * SPACING_SHARE;
    (spacing.max(1.0).log2().floor() as u32).min(62)
}

/// 64-bit FNV-1a with a final mix (so the low bits are as good as the high ones): stable
/// across runs, versions and machines, unlike `std`'s hasher.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The hash of each row's value in `column` (a NULL hashes as no bytes): the bytes of strings
/// and binaries, the little-endian value of integers, dates and timestamps, else the display
/// text.
pub fn row_keys(column: &ArrayRef) -> Vec<u64> {
    let null = hash(&[]);
    let n = column.len();
    let of = |i: usize, f: &dyn Fn(usize) -> u64| if column.is_null(i) { null } else { f(i) };
    match column.data_type() {
        DataType::Utf8 => {
            let a = column.as_string::<i32>();
            (0..n).map(|i| of(i, &|i| hash(a.value(i).as_bytes()))).collect()
        }
        DataType::Binary => {
            let a = column.as_binary::<i32>();
            (0..n).map(|i| of(i, &|i| hash(a.value(i)))).collect()
        }
        DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Date32 | DataType::Timestamp(..) => {
            match arrow::compute::cast(column, &DataType::Int64) {
                Ok(ints) => {
                    let a = ints.as_primitive::<Int64Type>();
                    (0..n).map(|i| of(i, &|i| hash(&a.value(i).to_le_bytes()))).collect()
                }
                Err(_) => vec![null; n],
            }
        }
        _ => match ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default()) {
            Ok(f) => (0..n).map(|i| of(i, &|i| hash(f.value(i).to_string().as_bytes()))).collect(),
            Err(_) => vec![null; n],
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};

    use super::*;

    /// Drives `Boundaries` over `keys` the way the writer does, with every row `row_bytes`
    /// encoded bytes; the row indexes where groups start.
    fn groups(keys: &[u64], row_bytes: usize, group_bytes: usize) -> Vec<usize> {
        let mut b = Boundaries::new(group_bytes);
        let (mut starts, mut at, mut rows) = (vec![0], 0, 0);
        while at < keys.len() {
            match b.next(rows * row_bytes, rows, &keys[at..]) {
                Step::Write(k) => {
                    at += k;
                    rows += k;
                }
                Step::WriteThenCut(k) => {
                    at += k;
                    rows = 0;
                    starts.push(at);
                }
                Step::Cut => {
                    rows = 0;
                    starts.push(at);
                }
            }
        }
        starts.retain(|&s| s < keys.len());
        starts
    }

    fn keys(ids: impl Iterator<Item = u64>) -> Vec<u64> {
        ids.map(|i| hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn steps_follow_the_minimum_the_candidates_and_the_hard_limit() {
        let cases: &[(usize, usize, &[u64], Step)] = &[
            (0, 0, &[1; 5000], Step::Write(1024)),
            (100, 10, &[1, 1, 1], Step::Write(3)),
            (200 << 10, 1000, &[1; 5000], Step::Write(1024)),
            (1 << 20, 1 << 20, &[1, 1, 1], Step::Cut),
        ];
        for (size, rows, keys, want) in cases {
            assert_eq!(Boundaries::new(1 << 20).next(*size, *rows, keys), *want, "{size} {rows}");
        }
        // past the minimum: the first candidate (hash ≡ 0 under the mask) ends the group
        let mut b = Boundaries::new(1 << 20);
        assert_eq!(b.next(200 << 10, 1, &[3, 5, 0, 7]), Step::WriteThenCut(3));
        let mut b = Boundaries::new(1 << 20);
        assert_eq!(b.next(200 << 10, 1000, &[1, 3, 5]), Step::Write(3));
        assert_eq!((spacing_bits(0), spacing_bits(1000), spacing_bits(3000)), (0, 11, 12));
    }

    /// After rows are removed near the start or inserted, the boundaries fall on the same rows
    /// again within a few groups, and groups stay within the limit.
    #[test]
    fn boundaries_resynchronise_after_an_insertion_or_a_removal() {
        let base = keys(0..400_000);
        let before = groups(&base, 100, 4 << 20);
        // the limit of 4 MiB per group of 100-byte rows is 41,943 rows (and one probe more)
        assert!(
            before.len() > 10 && before.windows(2).all(|w| w[1] - w[0] <= 41_943 + 1024),
            "{before:?}"
        );
        let mut removed: Vec<u64> = base.clone();
        removed.drain(1_000..3_000);
        let mut inserted: Vec<u64> = keys(1_000_000..1_000_500);
        inserted.extend(&base);
        for (changed, shift) in [(removed, -2_000i64), (inserted, 500)] {
            let after = groups(&changed, 100, 4 << 20);
            let moved: std::collections::HashSet<i64> = after.iter().map(|&s| s as i64 - shift).collect();
            let same = before.iter().filter(|&&s| moved.contains(&(s as i64))).count();
            assert!(same + 3 >= before.len(), "{same} of {} boundaries kept", before.len());
        }
    }

    #[test]
    fn keys_hash_the_first_columns_values() {
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("a")]));
        let k = row_keys(&s);
        assert_eq!((k[0] == k[2], k[0] == k[1], k[1]), (true, false, hash(&[])));
        let i: ArrayRef = Arc::new(Int64Array::from(vec![7, 8]));
        assert_eq!(row_keys(&i), vec![hash(&7i64.to_le_bytes()), hash(&8i64.to_le_bytes())]);
    }
}

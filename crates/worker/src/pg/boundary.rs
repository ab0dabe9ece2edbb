//! Content-defined row-group boundaries, so that a re-dump's row groups (and with them every
//! column chunk's pages) start at the same rows as the last dump's wherever the rows did not
//! change: a row group ends at the first row, past a minimum row count, whose first-column
//! value hashes to a candidate, or at eight times the minimum. The minimum and the candidate
//! spacing are learnt once per stream from its first batch's Arrow size (rounded to a power of
//! two, so rows a little wider next time give the same numbers): every later decision depends
//! on the rows' keys and count alone, not on encoded sizes that jump whenever a page is
//! compressed. Twice the row group size, encoded, is a backstop for memory. A row inserted,
//! removed or edited then moves the boundaries around it only. Pure, no I/O.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// Rows written at a time without a boundary, so that the hard limit is noticed near where it
/// is reached.
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

impl Step {
    /// The rows to write, and whether the row group ends after them.
    pub fn rows_then_cut(self) -> (usize, bool) {
        match self {
            Step::Write(n) => (n, false),
            Step::WriteThenCut(n) => (n, true),
            Step::Cut => (0, true),
        }
    }
}

/// A group without a candidate ends at this many times the minimum row count: e^(−7/2) ≈ 3 %
/// of groups, with candidates twice the minimum apart.
const MAX_PER_MIN: usize = 8;

/// Decides where row groups end, from the in-progress group's encoded size and row count and
/// the hashes of the rows still to write.
#[derive(Clone, Debug)]
pub struct Boundaries {
    /// The memory backstop: twice the row group size, encoded.
    max_bytes: usize,
    /// Every group's minimum row count.
    min_rows: usize,
    /// Every group's maximum row count ([`MAX_PER_MIN`] times the minimum).
    max_rows: usize,
    /// A candidate row's hash has these low bits zero.
    mask: u64,
}

impl Boundaries {
    /// Boundaries for row groups of at most `row_group_bytes` encoded bytes, for rows like the
    /// first batch's (`rows` rows of `arrow_bytes` in Arrow arrays): the minimum is the rows
    /// in `row_group_bytes` of such Arrow data, rounded down to a power of two, and candidates
    /// are twice that apart on average (one more zero bit). Encoded, a group is then a
    /// fraction of the row group size (the bench's catalog rows: about 48,000 rows, 3.5 MiB),
    /// while the column writers' open pages (up to the chunker's 1 MiB each) take the rest of
    /// the memory the size allows. Large groups matter on a deduplicating host: each group
    /// starts every column anew, so a few edited columns spoil the host's chunks around each
    /// of their column chunks.
    pub fn new(row_group_bytes: usize, rows: usize, arrow_bytes: usize) -> Boundaries {
        let per_row = (arrow_bytes / rows.max(1)).max(1);
        let rows_in_size = (row_group_bytes / per_row).max(1);
        let bits = usize::BITS - 1 - rows_in_size.leading_zeros();
        Boundaries {
            max_bytes: row_group_bytes.max(1).saturating_mul(2),
            min_rows: 1 << bits,
            max_rows: MAX_PER_MIN << bits,
            mask: (1u64 << (bits + 1).min(62)) - 1,
        }
    }

    /// The next step for a group of `size` encoded bytes and `rows` rows, with `keys` the
    /// hashes of the batch's rows not written yet (non-empty).
    pub fn next(&self, size: usize, rows: usize, keys: &[u64]) -> Step {
        if rows > 0 && (size >= self.max_bytes || rows >= self.max_rows) {
            return Step::Cut;
        }
        if rows < self.min_rows {
            return Step::Write(keys.len().min(self.min_rows - rows).min(PROBE_ROWS));
        }
        let probe = &keys[..keys.len().min(PROBE_ROWS).min(self.max_rows - rows)];
        match probe.iter().position(|k| k & self.mask == 0) {
            Some(i) => Step::WriteThenCut(i + 1),
            None => Step::Write(probe.len()),
        }
    }
}

/// The Arrow bytes of `columns`' values (what the sliced buffers hold), for
/// [`Boundaries::new`].
pub fn arrow_bytes(columns: &[ArrayRef]) -> usize {
    columns.iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0)).sum()
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

    /// Drives `Boundaries` for 1 MiB groups over `keys` the way the writer does, for rows of
    /// 100 Arrow bytes and with row `i` taking `row_bytes(i)` encoded bytes; the row indexes
    /// where groups start.
    fn groups(keys: &[u64], row_bytes: &dyn Fn(usize) -> usize) -> Vec<usize> {
        let b = Boundaries::new(1 << 20, 1000, 100_000);
        let (mut starts, mut at, mut rows, mut size) = (vec![0], 0, 0, 0);
        while at < keys.len() {
            let (k, cut) = b.next(size, rows, &keys[at..]).rows_then_cut();
            size += (at..at + k).map(row_bytes).sum::<usize>();
            at += k;
            rows += k;
            if cut {
                (rows, size) = (0, 0);
                starts.push(at);
            }
        }
        starts.retain(|&s| s < keys.len());
        starts
    }

    /// How many of `before`'s group starts `after` has too, `shift` rows later.
    fn kept(before: &[usize], after: &[usize], shift: i64) -> usize {
        let moved: std::collections::HashSet<i64> = after.iter().map(|&s| s as i64 - shift).collect();
        before.iter().filter(|&&s| moved.contains(&(s as i64))).count()
    }

    fn keys(ids: impl Iterator<Item = u64>) -> Vec<u64> {
        ids.map(|i| hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn steps_follow_the_minimum_the_candidates_and_the_hard_limit() {
        // rows of 100 Arrow bytes: 1 MiB holds 10,485, so groups take at least 8,192 rows and
        // at most 65,536, and candidates have 14 low zero bits
        let b = Boundaries::new(1 << 20, 1000, 100_000);
        assert_eq!((b.min_rows, b.max_rows, b.mask), (8192, 65_536, 16_383));
        let cases: &[(usize, usize, &[u64], Step)] = &[
            (0, 0, &[0; 5000], Step::Write(1024)),
            (100, 8000, &[0; 5000], Step::Write(192)),
            (100, 8192, &[16_383, 16_384, 0], Step::WriteThenCut(2)),
            (100, 9000, &[1, 3, 5], Step::Write(3)),
            (100, 9000, &[1; 5000], Step::Write(1024)),
            (100, 65_000, &[1; 5000], Step::Write(536)),
            (100, 65_536, &[0; 5000], Step::Cut),
            (2 << 20, 10, &[0, 0, 0], Step::Cut),
        ];
        for (size, rows, keys, want) in cases {
            assert_eq!(b.next(*size, *rows, keys), *want, "{size} {rows}");
        }
        // a tiny first batch or huge rows still give a minimum of one row
        assert_eq!(Boundaries::new(1 << 20, 0, 0).min_rows, 1 << 20);
        assert_eq!(Boundaries::new(1 << 20, 1, 10 << 20).min_rows, 1);
    }

    /// After rows are removed near the start or inserted, the boundaries fall on the same rows
    /// again within a few groups.
    #[test]
    fn boundaries_resynchronise_after_an_insertion_or_a_removal() {
        let base = keys(0..800_000);
        let before = groups(&base, &|_| 10);
        assert!(before.len() > 20 && before.windows(2).all(|w| w[1] - w[0] >= 8192), "{before:?}");
        let mut removed: Vec<u64> = base.clone();
        removed.drain(1_000..3_000);
        let mut inserted: Vec<u64> = keys(1_000_000..1_000_500);
        inserted.extend(&base);
        for (changed, shift) in [(removed, -2_000i64), (inserted, 500)] {
            let after = groups(&changed, &|_| 10);
            let same = kept(&before, &after, shift);
            assert!(same + 3 >= before.len(), "{same} of {} boundaries kept", before.len());
        }
    }

    /// Rows that grow (an edit to every 100th row, or wider rows from some point on) do not
    /// move the boundaries while groups stay under the hard limit; past it, groups are cut.
    #[test]
    fn rows_that_grow_do_not_move_the_boundaries() {
        let base = keys(0..800_000);
        let before = groups(&base, &|_| 10);
        assert_eq!(groups(&base, &|i| if i % 100 == 0 { 40 } else { 10 }), before);
        assert_eq!(groups(&base, &|i| if i < 60_000 { 10 } else { 13 }), before);
        // groups end by 65,536 rows, and by 2 MiB encoded (10,486 rows of 200 bytes)
        assert!(before.windows(2).all(|w| w[1] - w[0] <= 65_536), "{before:?}");
        let huge = groups(&base, &|_| 200);
        assert!(huge.windows(2).all(|w| w[1] - w[0] <= 10_486 + 1024), "{huge:?}");
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

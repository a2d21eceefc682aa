//! The seeded generator, the mutation engine and the driver shared by the decoder
//! fuzz tests: `crates/proto/tests/decoder_fuzz.rs` and (by `#[path]`)
//! `crates/crypto/tests/decoder_fuzz.rs`. What differs between the two crates'
//! decoders is a [`Mutations`] value, given to [`Fuzz::new`]; what differs between
//! decoders of one crate is an argument (the pool, its length fields, how long a
//! valid prefix a random input may start with).
//!
//! Deterministic: each test seeds a ChaCha20 generator from a base seed and its own
//! name, and prints both. `ATTUNE_FUZZ_SEED` (decimal or 0x-hex) sets another base.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The base seed; each test mixes in its own name.
pub const SEED: u64 = 0xa77e_5eed_0f00_d1e5;
/// Inputs per decoder.
pub const INPUTS: usize = 100_000;
/// How many valid encodings a test builds to mutate and splice.
pub const POOL: usize = 256;

/// Values a mutation writes over a byte.
pub const INTERESTING_U8: [u8; 10] = [0, 1, 2, 3, 4, 5, 0x7f, 0x80, 0xfe, 0xff];

/// How the mutations suit one crate's decoders.
#[derive(Debug)]
pub struct Mutations {
    /// Values a mutation writes into a length (or count, or cost) field.
    pub length_values: &'static [u32],
    /// Whether a length field may also be set to about half the remaining space
    /// (the previous bucket, for padded formats).
    pub half_remaining: bool,
    /// A random input "near a valid length" takes the length of a pool entry, but
    /// at most this.
    pub max_typical_len: usize,
}

pub fn base_seed() -> u64 {
    std::env::var("ATTUNE_FUZZ_SEED")
        .ok()
        .and_then(|s| {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => s.parse().ok(),
            }
        })
        .unwrap_or(SEED)
}

/// FNV-1a, to give every test its own stream from one base seed.
pub fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

pub struct Fuzz {
    rng: ChaCha20Rng,
    mutations: &'static Mutations,
}

impl Fuzz {
    pub fn new(test: &str, mutations: &'static Mutations) -> Self {
        let base = base_seed();
        let seed = base ^ fnv1a(test);
        println!("{test}: seed {seed:#018x} (base ATTUNE_FUZZ_SEED={base:#018x})");
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
            mutations,
        }
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    pub fn u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }

    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        self.rng.fill_bytes(&mut a);
        a
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A length biased towards the small and the boundary cases.
    pub fn len_up_to(&mut self, max: usize) -> usize {
        match self.below(4) {
            0 => self.below(max.min(4) + 1),
            1 => max - self.below(max.min(4) + 1),
            _ => self.below(max + 1),
        }
    }

    /// `n` picks from `items`.
    pub fn picks<T: Copy>(&mut self, n: usize, items: &[T]) -> Vec<T> {
        (0..n).map(|_| *self.pick(items)).collect()
    }

    /// A purely random input: random length 0..=600 (or near a valid length),
    /// half of the time behind a prefix of a valid encoding of at most
    /// `prefix_max` bytes.
    pub fn random_input(&mut self, pool: &[Vec<u8>], prefix_max: usize) -> Vec<u8> {
        let len = match self.below(4) {
            0 => {
                let typical = self.pick(pool).len().min(self.mutations.max_typical_len);
                (typical + self.below(5)).saturating_sub(2)
            }
            1 => self.below(16),
            _ => self.below(601),
        };
        let mut v = self.bytes(len);
        if self.one_in(2) {
            let seed = self.pick(pool);
            let n = self.below(prefix_max + 1).min(seed.len()).min(v.len());
            v[..n].copy_from_slice(&seed[..n]);
        }
        v
    }

    /// `pool[i]`, whose length fields are at `len_fields`, mutated one or more
    /// times.
    pub fn mutated_input(&mut self, pool: &[Vec<u8>], i: usize, len_fields: &[usize]) -> Vec<u8> {
        let mut v = pool[i].clone();
        let rounds = match self.below(8) {
            0..=4 => 1,
            5 | 6 => 2,
            _ => self.range(3, 8),
        };
        for _ in 0..rounds {
            self.mutate_once(&mut v, len_fields, pool);
        }
        v
    }

    fn mutate_once(&mut self, v: &mut Vec<u8>, len_fields: &[usize], pool: &[Vec<u8>]) {
        match self.below(13) {
            // Flip one bit.
            0 | 1 => {
                if !v.is_empty() {
                    let i = self.below(v.len());
                    v[i] ^= 1 << self.below(8);
                }
            }
            // Overwrite a byte with a random or a boundary value.
            2 | 3 => {
                if !v.is_empty() {
                    let i = self.below(v.len());
                    v[i] = if self.one_in(2) {
                        self.u32() as u8
                    } else {
                        *self.pick(&INTERESTING_U8)
                    };
                }
            }
            // Truncate, often by just a few bytes.
            4 => {
                let cut = if self.one_in(2) {
                    self.range(1, 4)
                } else {
                    self.below(v.len() + 1)
                };
                v.truncate(v.len().saturating_sub(cut));
            }
            // Extend with random bytes.
            5 => {
                let n = if self.one_in(2) {
                    self.range(1, 4)
                } else {
                    self.range(1, 64)
                };
                let extra = self.bytes(n);
                v.extend_from_slice(&extra);
            }
            // Insert random bytes.
            6 => {
                let at = self.below(v.len() + 1);
                let n = self.range(1, 8);
                let extra = self.bytes(n);
                v.splice(at..at, extra);
            }
            // Delete a few bytes.
            7 => {
                if !v.is_empty() {
                    let at = self.below(v.len());
                    let n = self.range(1, 8).min(v.len() - at);
                    v.drain(at..at + n);
                }
            }
            // Splice with another encoding.
            8 => {
                let other = self.pick(pool);
                self.splice(v, other);
            }
            9 | 10 => self.set_length_field(v, len_fields),
            // Duplicate a chunk in place.
            11 => {
                if !v.is_empty() {
                    let at = self.below(v.len());
                    let n = self.range(1, 16).min(v.len() - at);
                    let chunk = v[at..at + n].to_vec();
                    v.splice(at + n..at + n, chunk);
                }
            }
            _ => self.swap_two(v),
        }
    }

    /// Sets a length field (or, without one, any 4 bytes) to a boundary or huge
    /// value, or to just off the true remaining length.
    fn set_length_field(&mut self, v: &mut [u8], len_fields: &[usize]) {
        let known: Vec<usize> = len_fields
            .iter()
            .copied()
            .filter(|&o| o + 4 <= v.len())
            .collect();
        let at = if !known.is_empty() && !self.one_in(4) {
            *self.pick(&known)
        } else if v.len() >= 4 {
            self.below(v.len() - 3)
        } else {
            return;
        };
        let current = u32::from_be_bytes(v[at..at + 4].try_into().unwrap());
        let remaining = (v.len() - at - 4) as u32;
        let half = self.mutations.half_remaining;
        let values = self.mutations.length_values;
        let value = match self.below(if half { 5 } else { 4 }) {
            0 => current.wrapping_add(1),
            1 => current.wrapping_sub(1),
            2 => remaining.wrapping_add(self.below(3) as u32).wrapping_sub(1),
            // Half the remaining space, give or take: the previous bucket.
            3 if half => (remaining / 2)
                .wrapping_add(self.below(3) as u32)
                .wrapping_sub(1),
            _ => *self.pick(values),
        };
        v[at..at + 4].copy_from_slice(&value.to_be_bytes());
    }

    // Mutations of a sequence of anything (bytes, or the characters of a string).

    /// A prefix of `v`, then a suffix of `other` (at the same offset half of the
    /// time, so the structure lines up).
    pub fn splice<T: Clone>(&mut self, v: &mut Vec<T>, other: &[T]) {
        let i = self.below(v.len() + 1);
        let j = if self.one_in(2) {
            i.min(other.len())
        } else {
            self.below(other.len() + 1)
        };
        v.truncate(i);
        v.extend_from_slice(&other[j..]);
    }

    /// Swaps two elements (perhaps an element with itself).
    pub fn swap_two<T>(&mut self, v: &mut [T]) {
        if v.len() >= 2 {
            let i = self.below(v.len());
            let j = self.below(v.len());
            v.swap(i, j);
        }
    }

    /// Replaces one element with one from `alphabet`.
    pub fn replace_one<T: Copy>(&mut self, v: &mut [T], alphabet: &[T]) {
        if !v.is_empty() {
            let i = self.below(v.len());
            v[i] = *self.pick(alphabet);
        }
    }

    /// Inserts one element from `alphabet`.
    pub fn insert_one<T: Copy>(&mut self, v: &mut Vec<T>, alphabet: &[T]) {
        let at = self.below(v.len() + 1);
        v.insert(at, *self.pick(alphabet));
    }

    /// Removes one element.
    pub fn remove_one<T>(&mut self, v: &mut Vec<T>) {
        if !v.is_empty() {
            let at = self.below(v.len());
            v.remove(at);
        }
    }

    /// Keeps a random prefix (perhaps all, perhaps nothing).
    pub fn keep_prefix<T>(&mut self, v: &mut Vec<T>) {
        let keep = self.below(v.len() + 1);
        v.truncate(keep);
    }
}

// ---------------------------------------------------------------------------
// The driver.
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
pub struct Stats {
    pub random: usize,
    pub random_ok: usize,
    pub mutated: usize,
    pub mutated_ok: usize,
    pub elapsed: Duration,
}

impl Stats {
    pub fn count(&mut self, random: bool, ok: bool) {
        if random {
            self.random += 1;
            self.random_ok += usize::from(ok);
        } else {
            self.mutated += 1;
            self.mutated_ok += usize::from(ok);
        }
    }

    pub fn inputs(&self) -> usize {
        self.random + self.mutated
    }

    pub fn ok(&self) -> usize {
        self.random_ok + self.mutated_ok
    }

    pub fn report(&self, name: &str) {
        println!(
            "{name}: {} inputs ({} random, {} mutated), {} decoded OK ({} random, {} mutated), {:.2?}",
            self.inputs(),
            self.random,
            self.mutated,
            self.ok(),
            self.random_ok,
            self.mutated_ok,
            self.elapsed
        );
    }

    /// All `INPUTS` ran; at least `per_mille` of the mutated inputs decode (the
    /// fuzzing reaches past the first checks), and not all of them (the decoder
    /// checks something).
    pub fn assert_reach(&self, name: &str, per_mille: usize) {
        assert!(self.inputs() >= INPUTS);
        assert!(
            self.mutated_ok * 1000 >= self.mutated * per_mille,
            "{name}: only {} of {} mutated inputs decoded; the fuzzing does not get past the first checks",
            self.mutated_ok,
            self.mutated
        );
        assert!(
            self.mutated_ok < self.mutated,
            "{name}: every mutated input decoded; the decoder checks nothing?"
        );
    }
}

/// Runs `INPUTS` inputs, a quarter of them random and the rest mutated:
/// `one(f, random)` makes an input of that kind, feeds it to the decoder, checks
/// whatever the decoder accepts, and says whether it accepted it. Prints the
/// counts.
pub fn drive(name: &str, f: &mut Fuzz, mut one: impl FnMut(&mut Fuzz, bool) -> bool) -> Stats {
    let mut stats = Stats::default();
    let start = Instant::now();
    for _ in 0..INPUTS {
        let random = f.one_in(4);
        let ok = one(f, random);
        stats.count(random, ok);
    }
    stats.elapsed = start.elapsed();
    stats.report(name);
    stats
}

//! Instruction-set selection and the vector type the transforms are written in.
//!
//! The transform and epilogue code is plain Rust over [`V`] (fixed arrays of 8 or 16 lanes),
//! which LLVM turns into SIMD. [`Isa::run`] compiles the same code again inside an
//! `avx2,fma`-enabled and an `avx512f`-enabled function and picks the copy the CPU runs, so
//! there is one source for the portable, AVX2 and AVX-512 paths; [`Isa::lanes`] says which
//! width fills this CPU's registers.

use std::ops::{Add, Mul, Sub};

/// Which instruction set the hand-written kernels (GEMM microkernel, Winograd transforms) use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa {
    avx2_fma: bool,
    /// AVX-512F on top of AVX2 + FMA: the GEMM microkernel uses 16-lane registers.
    avx512: bool,
}

impl Isa {
    /// The best instruction set this CPU supports, capped by the environment variable
    /// `XSEARCH_SIMD` (`avx2` or `portable`), which lets benchmarks and CI measure and test
    /// the fallback paths on a CPU that has more; any other value is ignored.
    pub fn detect() -> Self {
        let best = Self::detect_cpu();
        match std::env::var("XSEARCH_SIMD").as_deref() {
            Ok("avx2") => best.without_avx512(),
            Ok("portable") => Self::portable(),
            _ => best,
        }
    }

    fn detect_cpu() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2_fma = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
            Self {
                avx2_fma,
                avx512: avx2_fma && is_x86_feature_detected!("avx512f"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Self::portable()
        }
    }

    /// The portable path: baseline instructions only. Tests use it to check the fallback.
    pub fn portable() -> Self {
        Self {
            avx2_fma: false,
            avx512: false,
        }
    }

    /// This selection without AVX-512, so tests and benchmarks can run the AVX2 + FMA code on
    /// a CPU that has both.
    pub fn without_avx512(self) -> Self {
        Self {
            avx512: false,
            ..self
        }
    }

    /// Whether this selects the AVX2 + FMA code.
    pub fn is_avx2_fma(self) -> bool {
        self.avx2_fma
    }

    /// Whether this selects the AVX-512 GEMM microkernel.
    pub fn is_avx512(self) -> bool {
        self.avx512
    }

    /// Lanes of the [`V`] that fill one register: 16 with AVX-512, else 8.
    pub(crate) fn lanes(self) -> usize {
        if self.avx512 {
            16
        } else {
            8
        }
    }

    /// Runs `f`, compiled for AVX-512 or AVX2 + FMA when this `Isa` selects it.
    ///
    /// `f` and the `#[inline(always)]` helpers it calls are inlined into the feature-enabled
    /// wrapper, which is what makes LLVM emit 512- or 256-bit code for them.
    #[inline(always)]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            // SAFETY: `avx512` is only true when `detect` saw AVX-512F, AVX2 and FMA on this
            // CPU (the fields are private; `portable` and `without_avx512` only clear them).
            return unsafe { run_avx512(f) };
        }
        #[cfg(target_arch = "x86_64")]
        if self.avx2_fma {
            // SAFETY: `avx2_fma` is only true when `detect` saw both features on this CPU
            // (the fields are private; `portable` and `without_avx512` only clear them), so
            // the feature-enabled code runs on hardware that has the instructions.
            return unsafe { run_avx2_fma(f) };
        }
        f()
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn run_avx2_fma<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn run_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `L` f32 lanes: one block of channels, the unit every transform works on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct V<const L: usize>(pub [f32; L]);

impl<const L: usize> Default for V<L> {
    fn default() -> Self {
        Self([0.0; L])
    }
}

impl<const L: usize> V<L> {
    /// Loads `len` (<= L) values from `src[off..]`; missing lanes are zero.
    #[inline(always)]
    pub fn load(src: &[f32], off: usize, len: usize) -> Self {
        let mut v = [0.0; L];
        if len == L {
            v.copy_from_slice(&src[off..off + L]);
        } else {
            v[..len].copy_from_slice(&src[off..off + len]);
        }
        Self(v)
    }

    /// Stores the first `len` (<= L) lanes into `dst[off..]`.
    #[inline(always)]
    pub fn store(self, dst: &mut [f32], off: usize, len: usize) {
        if len == L {
            dst[off..off + L].copy_from_slice(&self.0);
        } else {
            dst[off..off + len].copy_from_slice(&self.0[..len]);
        }
    }

    #[inline(always)]
    pub fn relu(self) -> Self {
        Self(self.0.map(|x| x.max(0.0)))
    }
}

impl<const L: usize> Add for V<L> {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] + o.0[i]))
    }
}

impl<const L: usize> Sub for V<L> {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] - o.0[i]))
    }
}

impl<const L: usize> Mul<f32> for V<L> {
    type Output = Self;
    #[inline(always)]
    fn mul(self, s: f32) -> Self {
        Self(self.0.map(|x| x * s))
    }
}

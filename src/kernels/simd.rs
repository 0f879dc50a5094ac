//! Instruction-set selection and the 8-lane vector type the transforms are written in.
//!
//! The transform and epilogue code is plain Rust over [`V8`] (fixed 8-lane arrays), which LLVM
//! turns into SIMD. [`Isa::run`] compiles the same code a second time inside an
//! `avx2,fma`-enabled function and picks that copy when the CPU has the features, so there is
//! one source for both the portable and the AVX2 path.

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

    /// Runs `f`, compiled for AVX2 + FMA when this `Isa` selects it.
    ///
    /// `f` and the `#[inline(always)]` helpers it calls are inlined into the feature-enabled
    /// wrapper, which is what makes LLVM emit 256-bit code for them.
    #[inline(always)]
    pub(crate) fn run<R>(self, f: impl FnOnce() -> R) -> R {
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

/// Eight f32 lanes: one block of channels, the unit every transform works on.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct V8(pub [f32; 8]);

impl V8 {
    pub const LANES: usize = 8;

    /// Loads `len` (<= 8) values from `src[off..]`; missing lanes are zero.
    #[inline(always)]
    pub fn load(src: &[f32], off: usize, len: usize) -> Self {
        let mut v = [0.0; 8];
        if len == 8 {
            v.copy_from_slice(&src[off..off + 8]);
        } else {
            v[..len].copy_from_slice(&src[off..off + len]);
        }
        Self(v)
    }

    /// Stores the first `len` (<= 8) lanes into `dst[off..]`.
    #[inline(always)]
    pub fn store(self, dst: &mut [f32], off: usize, len: usize) {
        if len == 8 {
            dst[off..off + 8].copy_from_slice(&self.0);
        } else {
            dst[off..off + len].copy_from_slice(&self.0[..len]);
        }
    }

    #[inline(always)]
    pub fn relu(self) -> Self {
        Self(self.0.map(|x| x.max(0.0)))
    }
}

impl Add for V8 {
    type Output = Self;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] + o.0[i]))
    }
}

impl Sub for V8 {
    type Output = Self;
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] - o.0[i]))
    }
}

impl Mul<f32> for V8 {
    type Output = Self;
    #[inline(always)]
    fn mul(self, s: f32) -> Self {
        Self(self.0.map(|x| x * s))
    }
}

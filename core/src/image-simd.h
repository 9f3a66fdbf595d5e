/* image-simd.h: build hot image loops once per instruction set.
 *
 * Internal to libcnclip. The default x86-64 build targets SSE2, which has no
 * 32-bit multiply; CNCLIP_MULTIVERSION makes GCC/Clang compile a function
 * for AVX-512, AVX2 and the baseline and pick one when the library is loaded
 * (GNU ifunc), so plain C loops run as wide SIMD where the CPU allows. The
 * results are identical: the loops use integer arithmetic only. Clang 14
 * names the dispatcher "f.ifunc", so calls from other files do not link:
 * clang gets the clones from version 16 on. */
#ifndef CNCLIP_IMAGE_SIMD_H
#define CNCLIP_IMAGE_SIMD_H

#if defined(__x86_64__) && defined(__linux__) && defined(__GLIBC__) \
    && (defined(__clang__) ? __clang_major__ >= 16 : __GNUC__ >= 8)
#define CNCLIP_MULTIVERSION __attribute__ ((target_clones ("avx512f", "avx2", "default")))
#else
#define CNCLIP_MULTIVERSION
#endif

#endif /* CNCLIP_IMAGE_SIMD_H */

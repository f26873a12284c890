// <immintrin.h> for the AVX-512 kernel files whose intrinsics trip a false GCC warning: GCC 12
// warns about an uninitialized variable inside its own AVX-512 intrinsics (_mm512_undefined_ps,
// GCC bug 105593) once they are inlined at -O3; the code is fine. The pragmas apply to the rest
// of the including file, so include this only from *_avx512.cpp files.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>

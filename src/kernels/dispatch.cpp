// The one place that decides which ISA's kernels run: builds a KernelTable per ISA from the
// functions in *_ref.cpp, *_avx2.cpp and *_avx512.cpp, and picks the best one the CPU has,
// unless BILLION_KERNELS names one (scalar | avx2 | avx512 | auto). This file itself is compiled
// for baseline x86-64, so it is safe to run on any CPU; AVX2 and AVX-512 code runs only through
// a table chosen here.
#include <cstdlib>
#include <string>

#include "core/cpu_features.h"
#include "core/error.h"
#include "kernels/impl.h"
#include "kernels/interleave.h"

namespace billion::kernels {

const char* isa_name(Isa isa) {
  return isa == Isa::Avx512 ? "avx512" : isa == Isa::Avx2 ? "avx2" : "scalar";
}

namespace {

// AVX-512 F/BW/VL/DQ + VNNI, as the compiler's runtime check sees it (libgcc's CPUID code also
// checks that the OS saves the ZMM and mask registers, XCR0). core/cpu_features knows only
// AVX2-level features; this one question stays here, beside its only user.
bool cpu_has_avx512_vnni() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

}  // namespace

const KernelTable& scalar_kernel_table() {
  static const KernelTable table = {
      .isa = Isa::Scalar,
      .mm_f32 = ref::mm_f32, .mm_f16 = ref::mm_f16, .mm_bf16 = ref::mm_bf16,
      .mm_q8_0 = ref::mm_q8_0, .mm_q4_0 = ref::mm_q4_0, .mm_q4_1 = ref::mm_q4_1,
      .mm_q5_0 = ref::mm_q5_0, .mm_q5_1 = ref::mm_q5_1,
      .mm_q4_k = ref::mm_q4_k, .mm_q5_k = ref::mm_q5_k, .mm_q6_k = ref::mm_q6_k,
      .mm_q4_0x16 = ref::mm_q4_0x16, .mm_q8_0x16 = ref::mm_q8_0x16, .mm_q4_kx16 = ref::mm_q4_kx16,
      .mm_q6_kx16 = ref::mm_q6_kx16,
      .interleave_at_load = false, .interleave_q4_k_at_load = false, .interleave_q6_k_at_load = false,
      .mm_q8_0x16_ggml = ref::mm_q8_0x16_ggml, .mm_q4_1x16_ggml = ref::mm_q4_1x16_ggml,
      .interleave_q8_0_ggml_at_load = false, .interleave_q4_1_ggml_at_load = false,
      .mm_f16x4 = ref::mm_f16x4, .mm_bf16x4 = ref::mm_bf16x4, .interleave_half_at_load = false,
      .quantize_q8a = ref::quantize_q8a, .quantize_q8k = ref::quantize_q8k,
      .rmsnorm = ref::rmsnorm, .layernorm = ref::layernorm, .softmax = ref::softmax,
      .silu_mul = ref::silu_mul, .gelu = ref::gelu, .add = ref::add, .rope = ref::rope,
      .rope_ggml = ref::rope_ggml,
      .f32_to_f16 = ref::f32_to_f16, .f16_to_f32 = ref::f16_to_f32,
      .attention_f16 = ref::attention_f16,
  };
  return table;
}

const KernelTable& avx2_kernel_table() {
  static const KernelTable table = {
      .isa = Isa::Avx2,
      .mm_f32 = avx2::mm_f32, .mm_f16 = avx2::mm_f16, .mm_bf16 = avx2::mm_bf16,
      .mm_q8_0 = avx2::mm_q8_0, .mm_q4_0 = avx2::mm_q4_0, .mm_q4_1 = avx2::mm_q4_1,
      .mm_q5_0 = avx2::mm_q5_0, .mm_q5_1 = avx2::mm_q5_1,
      .mm_q4_k = avx2::mm_q4_k, .mm_q5_k = avx2::mm_q5_k, .mm_q6_k = avx2::mm_q6_k,
      .mm_q4_0x16 = avx2::mm_q4_0x16, .mm_q8_0x16 = avx2::mm_q8_0x16,
      // Q4_K re-laid too: the interleaved tile (matmul_kquant_interleaved_avx2.cpp, the same bits
      // as the plain one) is 3-5x faster for decode and prefill (bench_kernels, TinyLlama shapes).
      .mm_q4_kx16 = avx2::mm_q4_kx16,
      // Q6_K likewise (matmul_q6_k_interleaved_avx2.cpp, the plain tile's bits): 4-7x faster for
      // decode and ~3.8x for prefill than the plain AVX2 tile (bench_kernels, TinyLlama shapes,
      // measured on Zen 4 with BILLION_KERNELS=avx2).
      .mm_q6_kx16 = avx2::mm_q6_kx16,
      // Q8_0 prefill with the tokens in the lanes (matmul_q8_0_tokens_avx2.cpp, the same bits).
      .mm_q8_0x16_tokens16 = avx2::mm_q8_0x16_tokens16,
      .interleave_at_load = true, .interleave_q4_k_at_load = true, .interleave_q6_k_at_load = true,
      // The tied Q8_0 output re-laid in ggml's order (matmul_interleaved_ggml_avx2.cpp, the plain
      // tile's bits, so llama.cpp's logits): decode about 1.7x faster than the plain tile on
      // SmolLM2's 49152x576 and Llama-3.2's 128256x2048 (bench_kernels --ggml-order vs --plain).
      .mm_q8_0x16_ggml = avx2::mm_q8_0x16_ggml,
      // Q4_1 (SmolLM2, the default benchmark model) likewise, in the same file.
      .mm_q4_1x16_ggml = avx2::mm_q4_1x16_ggml,
      .interleave_q8_0_ggml_at_load = true, .interleave_q4_1_ggml_at_load = true,
      // F16/BF16 in runs of four rows (matmul_avx2.cpp, the plain tile's bits): the four-row
      // tile reads one stream instead of four rows apart, 1.2-1.8x the bytes per second of one
      // core (interleave.h). A decode step gains only where the VM grants more than two such
      // cores read from four rows: at ~35 GB/s both layouts ran TinyLlama F16 at the roof.
      .mm_f16x4 = avx2::mm_f16x4, .mm_bf16x4 = avx2::mm_bf16x4, .interleave_half_at_load = true,
      .quantize_q8a = avx2::quantize_q8a, .quantize_q8k = avx2::quantize_q8k,
      .rmsnorm = avx2::rmsnorm, .layernorm = ref::layernorm, .softmax = avx2::softmax,
      .silu_mul = avx2::silu_mul, .gelu = ref::gelu, .add = avx2::add, .rope = ref::rope,
      // Both ropes are the reference: a few hundred pairs per token, a negligible share of a
      // step. A vector rope_ggml must keep its two fmas to stay bit-identical (OpsTest checks).
      .rope_ggml = ref::rope_ggml,
      .f32_to_f16 = avx2::f32_to_f16, .f16_to_f32 = avx2::f16_to_f32,
      .attention_f16 = avx2::attention_f16,
  };
  return table;
}

// The AVX2 table with the AVX-512 tiles of the formats that have one (Q8_0, Q4_0, Q4_1, the
// K-quants Q4_K, Q5_K, Q6_K, F16 and BF16: the weights of the models people run) and the
// interleaved Q4_0/Q8_0/Q4_K/Q6_K kernels the loader re-lays those matrices for (as for AVX2), plus
// the tied Q8_0 output in ggml's order, and attention; every other entry is AVX2's.
const KernelTable& avx512_kernel_table() {
  static const KernelTable table = [] {
    KernelTable t = avx2_kernel_table();
    t.isa = Isa::Avx512;
    t.mm_q8_0 = avx512::mm_q8_0;
    t.mm_q4_0 = avx512::mm_q4_0;
    t.mm_q4_1 = avx512::mm_q4_1;
    t.mm_q4_k = avx512::mm_q4_k;
    t.mm_q5_k = avx512::mm_q5_k;
    t.mm_q6_k = avx512::mm_q6_k;
    t.mm_f16 = avx512::mm_f16;  // matmul_float_avx512.cpp
    t.mm_bf16 = avx512::mm_bf16;
    t.mm_q4_0x16 = avx512::mm_q4_0x16;
    t.mm_q8_0x16 = avx512::mm_q8_0x16;
    t.mm_q8_0x16_tokens16 = nullptr;  // vpdpbusd makes the interleaved tile the faster one here
    t.mm_q4_kx16 = avx512::mm_q4_kx16;  // matmul_kquant_interleaved_avx512.cpp
    // Q6_K stays re-laid (interleave_q6_k_at_load from AVX2): this tile ran 1.2-1.5x the plain
    // AVX-512 one for decode and ~2x for prefill (bench_kernels, TinyLlama shapes, Zen 4, 1 thread).
    t.mm_q6_kx16 = avx512::mm_q6_kx16;  // matmul_q6_k_interleaved_avx512.cpp
    t.mm_q8_0x16_ggml = avx512::mm_q8_0x16_ggml;  // matmul_interleaved_avx512.cpp
    t.mm_q4_1x16_ggml = avx512::mm_q4_1x16_ggml;
    t.interleave_q8_0_ggml_at_load = true;
    t.interleave_q4_1_ggml_at_load = true;
    // F16/BF16 stay in the file's rows: the tile streams one row at a time, and the runs of
    // four rows (this table's interleaved tiles, the plain tiles' bits) were no faster: TinyLlama
    // F16 pp512 81-90 tok/s against 87-94, tg128 14.2-16.1 against 15.2-17.2 (bench_peer, ours
    // only, three alternations). The tiles are here so that a re-laid matrix keeps this table's bits.
    t.mm_f16x4 = avx512::mm_f16x4;  // matmul_float_avx512.cpp
    t.mm_bf16x4 = avx512::mm_bf16x4;
    t.interleave_half_at_load = false;
    t.attention_f16 = avx512::attention_f16;  // attention_avx512.cpp
    return t;
  }();
  return table;
}

bool wants_interleaved(const KernelTable& k, GgmlType type, int64_t rows, int64_t cols) {
  const bool fast = type == GgmlType::Q4_K   ? k.interleave_q4_k_at_load
                    : type == GgmlType::Q6_K ? k.interleave_q6_k_at_load
                    : type == GgmlType::F16 || type == GgmlType::BF16 ? k.interleave_half_at_load
                                             : (type == GgmlType::Q4_0 || type == GgmlType::Q8_0) && k.interleave_at_load;
  return fast && can_interleave(type, rows, cols);
}

const KernelTable* kernels_for(Isa isa) {
  if (isa == Isa::Scalar) return &scalar_kernel_table();
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  if (isa == Isa::Avx2 && avx2) return &avx2_kernel_table();
  if (isa == Isa::Avx512 && avx2 && cpu_has_avx512_vnni()) return &avx512_kernel_table();
  return nullptr;
}

std::vector<Isa> available_isas() {
  std::vector<Isa> isas{Isa::Scalar};
  if (kernels_for(Isa::Avx2)) isas.push_back(Isa::Avx2);
  if (kernels_for(Isa::Avx512)) isas.push_back(Isa::Avx512);
  return isas;
}

const KernelTable& active_kernels() {
  static const KernelTable* table = [] {
    const char* env = std::getenv("BILLION_KERNELS");
    const std::string want = env ? env : "auto";
    if (want == "scalar") return &scalar_kernel_table();
    if (want == "avx2") {
      if (const KernelTable* t = kernels_for(Isa::Avx2)) return t;
      fail("BILLION_KERNELS", "avx2 requested but this CPU lacks AVX2, FMA or F16C");
    }
    if (want == "avx512") {
      if (const KernelTable* t = kernels_for(Isa::Avx512)) return t;
      fail("BILLION_KERNELS", "avx512 requested but this CPU lacks AVX-512 F/BW/VL/DQ with VNNI");
    }
    if (want != "auto") fail("BILLION_KERNELS", "unknown value '{}' (scalar, avx2, avx512 or auto)", want);
    const std::vector<Isa> isas = available_isas();
    return kernels_for(isas.back());
  }();
  return *table;
}

}  // namespace billion::kernels

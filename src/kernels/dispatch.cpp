// The one place that decides which ISA's kernels run: builds a KernelTable per ISA from the
// functions in *_ref.cpp and *_avx2.cpp, and picks one from the CPU features, unless
// BILLION_KERNELS names one (scalar | avx2 | auto). This file itself is compiled for baseline
// x86-64, so it is safe to run on any CPU; AVX2 code runs only through a table chosen here.
#include <cstdlib>
#include <string>

#include "core/cpu_features.h"
#include "core/error.h"
#include "kernels/impl.h"

namespace billion::kernels {

const char* isa_name(Isa isa) { return isa == Isa::Avx2 ? "avx2" : "scalar"; }

const KernelTable& scalar_kernel_table() {
  static const KernelTable table = {
      .isa = Isa::Scalar,
      .mm_f32 = ref::mm_f32, .mm_f16 = ref::mm_f16, .mm_bf16 = ref::mm_bf16,
      .mm_q8_0 = ref::mm_q8_0, .mm_q4_0 = ref::mm_q4_0, .mm_q4_1 = ref::mm_q4_1,
      .mm_q5_0 = ref::mm_q5_0, .mm_q5_1 = ref::mm_q5_1,
      .mm_q4_k = ref::mm_q4_k, .mm_q5_k = ref::mm_q5_k, .mm_q6_k = ref::mm_q6_k,
      .quantize_q8a = ref::quantize_q8a, .quantize_q8k = ref::quantize_q8k,
      .rmsnorm = ref::rmsnorm, .layernorm = ref::layernorm, .softmax = ref::softmax,
      .silu_mul = ref::silu_mul, .gelu = ref::gelu, .add = ref::add, .rope = ref::rope,
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
      .quantize_q8a = avx2::quantize_q8a, .quantize_q8k = ref::quantize_q8k,
      .rmsnorm = avx2::rmsnorm, .layernorm = ref::layernorm, .softmax = avx2::softmax,
      .silu_mul = avx2::silu_mul, .gelu = ref::gelu, .add = avx2::add, .rope = ref::rope,
      .f32_to_f16 = avx2::f32_to_f16, .f16_to_f32 = avx2::f16_to_f32,
      .attention_f16 = avx2::attention_f16,
  };
  return table;
}

const KernelTable* kernels_for(Isa isa) {
  if (isa == Isa::Scalar) return &scalar_kernel_table();
  const CpuFeatures& f = cpu_features();
  if (isa == Isa::Avx2 && f.avx2 && f.fma && f.f16c) return &avx2_kernel_table();
  return nullptr;
}

std::vector<Isa> available_isas() {
  std::vector<Isa> isas{Isa::Scalar};
  if (kernels_for(Isa::Avx2)) isas.push_back(Isa::Avx2);
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
    if (want != "auto") fail("BILLION_KERNELS", "unknown value '{}' (scalar, avx2 or auto)", want);
    const std::vector<Isa> isas = available_isas();
    return kernels_for(isas.back());
  }();
  return *table;
}

}  // namespace billion::kernels

// The CUDA backend: the decoder's forward pass on an NVIDIA GPU, for `billion bench --device
// cuda` (and anything else that calls Decoder::forward). One implementation for every family,
// driven by the same ArchitectureSpec and ModelWeights as the CPU decoder:
//   - weights are uploaded once, as F16 (default; what transformers runs in on a GPU) or F32
//     (the fidelity mode: the transformers F32 forward pass to ~1e-6); quantized GGUF types are
//     expanded to that precision on upload, so int8/int4 files keep their rounding error but
//     not their size on the GPU;
//   - matrix products of several tokens go to cuBLAS (F16 × F16 with F32 accumulation, or F32
//     SGEMM without TF32), one token's to our GEMV; norms, rotary, attention, activations and
//     residual adds are our kernels (cuda_kernels.cu), all in F32; the KV cache is F32 or F16 as
//     the cache's type says;
//   - rotary angles are pos × inv_freq in float32, as transformers computes them.
// Built when CMake finds a CUDA compiler (BILLION_CUDA); otherwise attach_cuda() throws a
// clear error and cuda_available() says why.
#pragma once
#include <memory>
#include <string>

#include "model/decoder.h"

namespace billion::gpu {

enum class WeightPrecision { F16, F32 };
WeightPrecision parse_weight_precision(const std::string& text);  // "f16" | "f32"

struct CudaOptions {
  int device = 0;
  WeightPrecision weights = WeightPrecision::F16;
};

// True when this build has CUDA and a device is visible; otherwise false and *why says which.
bool cuda_available(std::string* why);

// Uploads the decoder's weights and attaches the backend (Decoder::set_device). Throws
// billion::Error naming the problem when the build has no CUDA, no device is visible, a layer
// carries a LoRA adapter (those run on the CPU), or the weights do not fit the device.
std::shared_ptr<DeviceBackend> attach_cuda(Decoder& decoder, const CudaOptions& options = {});

}  // namespace billion::gpu

// Parsing of the GPU weight precision flag; shared by the CUDA and the no-CUDA builds.
#include "core/error.h"
#include "gpu/cuda_backend.h"

namespace billion::gpu {

WeightPrecision parse_weight_precision(const std::string& text) {
  if (text == "f16") return WeightPrecision::F16;
  if (text == "f32") return WeightPrecision::F32;
  throw Error("--gpu-weights: \"" + text + "\" is not a precision (choose f16 or f32)");
}

}  // namespace billion::gpu

// The CUDA backend's entry points in a build without a CUDA compiler: every call says so.
#include "core/error.h"
#include "gpu/cuda_backend.h"

namespace billion::gpu {

bool cuda_available(std::string* why) {
  if (why) *why = "this billion was built without CUDA (no CUDA compiler found when it was configured; see README, GPU)";
  return false;
}

std::shared_ptr<DeviceBackend> attach_cuda(Decoder&, const CudaOptions&) {
  std::string why;
  cuda_available(&why);
  throw Error("--device cuda: " + why);
}

}  // namespace billion::gpu

#include "server/grpc_status.h"

#include <cerrno>

namespace nhiguard::collector {

grpc::StatusCode grpc_code_for_errno(int code) {
  switch (code) {
    case EINVAL:
    case EBADMSG:
      return grpc::StatusCode::INVALID_ARGUMENT;
    case EACCES:
      return grpc::StatusCode::PERMISSION_DENIED;
    case ENOKEY:
      return grpc::StatusCode::UNAUTHENTICATED;
    case EMSGSIZE:
    case EAGAIN:
      return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case ENOENT:
      return grpc::StatusCode::NOT_FOUND;
    case EEXIST:
      return grpc::StatusCode::ALREADY_EXISTS;
    case ENOTSUP:
      return grpc::StatusCode::FAILED_PRECONDITION;
    case ESHUTDOWN:
      return grpc::StatusCode::UNAVAILABLE;
    default:
      return grpc::StatusCode::INTERNAL;
  }
}

}  // namespace nhiguard::collector

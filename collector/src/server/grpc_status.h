// Errors (errno) -> gRPC status codes, one table for every service of the collector:
//   EINVAL, EBADMSG -> INVALID_ARGUMENT     EACCES -> PERMISSION_DENIED    ENOKEY -> UNAUTHENTICATED
//   EMSGSIZE -> RESOURCE_EXHAUSTED          ENOENT -> NOT_FOUND            EEXIST -> ALREADY_EXISTS
//   ENOTSUP -> FAILED_PRECONDITION          ESHUTDOWN -> UNAVAILABLE       anything else -> INTERNAL
#pragma once

#include <grpcpp/support/status.h>

#include "common/result.h"

namespace nhiguard::collector {

grpc::StatusCode grpc_code_for_errno(int code);
inline grpc::Status to_status(const Error& error) {
  return {grpc_code_for_errno(error.code), error.message};
}

}  // namespace nhiguard::collector

// The control protocol's pure half: request parsing and validation (each bad request with its exact
// message), the contain rules in both spellings, errno -> code mapping, and response parsing.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include <nlohmann/json.hpp>

#include "control/control_protocol.h"

using namespace nhiguard::control;
using nhiguard::containment::ActionKind;
using nhiguard::containment::ActionState;
using nlohmann::json;

namespace {

constexpr const char* kHandle = "rb_01ARZ3NDEKTSV4RRFFQ69G5FAV";

std::string contain_line(const json& params) {
  return json{{"id", 9}, {"method", "contain"}, {"params", params}}.dump();
}

}  // namespace

TEST(ControlProtocol, GoodRequests) {
  auto status = parse_request(R"({"id": 1, "method": "status"})");
  ASSERT_TRUE(status.has_value()) << status.error().error.message;
  EXPECT_EQ(status->id, 1u);
  EXPECT_EQ(status->method, Method::status);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(status->params));

  auto actions = parse_request(R"({"id": 2, "method": "actions", "params": {"state": "active", "limit": 5}})");
  ASSERT_TRUE(actions.has_value()) << actions.error().error.message;
  const auto& a = std::get<ActionsRequest>(actions->params);
  EXPECT_EQ(a.state, ActionState::active);
  EXPECT_EQ(a.limit, 5u);

  auto all = parse_request(R"({"id": 3, "method": "actions"})");
  ASSERT_TRUE(all.has_value());
  EXPECT_FALSE(std::get<ActionsRequest>(all->params).state.has_value());
  EXPECT_EQ(std::get<ActionsRequest>(all->params).limit, kDefaultActionsLimit);

  for (const char* method : {"rollback", "approve", "reject"}) {
    auto r = parse_request(json{{"id", 4}, {"method", method}, {"params", {{"handle", kHandle}}}}.dump());
    ASSERT_TRUE(r.has_value()) << method << ": " << r.error().error.message;
    EXPECT_EQ(std::get<HandleRequest>(r->params).handle, kHandle);
  }
}

TEST(ControlProtocol, GoodContainRequests) {
  auto egress = parse_request(
      contain_line({{"action", "block_egress"},
                    {"target", {{"unit", "payments.service"}, {"destinations", {"10.0.0.0/8", "[2001:db8::1]:443"}}}},
                    {"ttl", "1h30m"},
                    {"reason", "token used from an unexpected service"}}));
  ASSERT_TRUE(egress.has_value()) << egress.error().error.message;
  const auto& c = std::get<ContainRequest>(egress->params);
  EXPECT_EQ(c.action, ActionKind::block_egress);
  EXPECT_EQ(c.target.unit, "payments.service");
  EXPECT_EQ(c.target.destinations.size(), 2u);
  EXPECT_EQ(c.ttl, std::chrono::minutes(90));
  EXPECT_EQ(c.reason, "token used from an unexpected service");

  // The CLI's hyphenated spelling is accepted; a reversible action without ttl gets the default.
  auto freeze = parse_request(
      contain_line({{"action", "freeze"}, {"target", {{"cgroup", "/system.slice/x.service"}}}, {"reason", "r"}}));
  ASSERT_TRUE(freeze.has_value()) << freeze.error().error.message;
  EXPECT_EQ(std::get<ContainRequest>(freeze->params).ttl, kDefaultTtl);

  auto deny = parse_request(contain_line({{"action", "deny-credential"},
                                          {"target", {{"credential", "/root/.aws/credentials"}, {"pid", 4242}}},
                                          {"ttl", "24h"},
                                          {"reason", "r"}}));
  ASSERT_TRUE(deny.has_value()) << deny.error().error.message;
  EXPECT_EQ(std::get<ContainRequest>(deny->params).target.pid, 4242u);

  auto kill = parse_request(contain_line({{"action", "kill_session"}, {"target", {{"pid", 77}}}, {"reason", "r"}}));
  ASSERT_TRUE(kill.has_value()) << kill.error().error.message;
  EXPECT_FALSE(std::get<ContainRequest>(kill->params).ttl.has_value());
}

TEST(ControlProtocol, BadRequestsSayWhatIsWrong) {
  struct Row {
    std::string line;
    std::optional<uint64_t> id;
    ErrorCode code;
    std::string message;
  };
  const json unit = {{"unit", "payments.service"}};
  const std::vector<Row> rows = {
      {"{not json", std::nullopt, ErrorCode::invalid_argument, "request is not valid JSON"},
      {"[1,2]", std::nullopt, ErrorCode::invalid_argument, "request must be an object, not an array"},
      {R"({"method": "status"})", std::nullopt, ErrorCode::invalid_argument, "id is required"},
      {R"({"id": -1, "method": "status"})", std::nullopt, ErrorCode::invalid_argument,
       "id must be between 0 and 18446744073709551615, not -1"},
      {R"({"id": "7", "method": "status"})", std::nullopt, ErrorCode::invalid_argument,
       "id must be an integer, not a string"},
      {R"({"id": 7})", 7, ErrorCode::invalid_argument, "method is required"},
      {R"({"id": 7, "method": "frobnicate"})", 7, ErrorCode::invalid_argument, "unknown method 'frobnicate'"},
      {R"({"id": 7, "method": "status", "extra": 1})", 7, ErrorCode::invalid_argument,
       "unknown field 'extra' in request"},
      {R"({"id": 7, "method": "status", "params": {"x": 1}})", 7, ErrorCode::invalid_argument,
       "unknown field 'x' in params"},
      {R"({"id": 7, "method": "actions", "params": []})", 7, ErrorCode::invalid_argument,
       "params must be an object, not an array"},
      {R"({"id": 7, "method": "actions", "params": {"state": "running"}})", 7, ErrorCode::invalid_argument,
       "unknown state 'running' (expected held, active, expired, rolled_back, failed, irreversible, rejected, dry_run "
       "or lapsed_by_reboot)"},
      {R"({"id": 7, "method": "actions", "params": {"limit": 0}})", 7, ErrorCode::invalid_argument,
       "limit must be between 1 and 10000, not 0"},
      {R"({"id": 7, "method": "actions", "params": {"limit": 2.5}})", 7, ErrorCode::invalid_argument,
       "limit must be an integer, not a number with a fraction"},
      {R"({"id": 7, "method": "rollback", "params": {}})", 7, ErrorCode::invalid_argument, "handle is required"},
      {R"({"id": 7, "method": "rollback", "params": {"handle": "rb_01arz3ndektsv4rrffq69g5fav"}})", 7,
       ErrorCode::invalid_argument,
       "invalid handle 'rb_01arz3ndektsv4rrffq69g5fav': expected rb_ followed by 26 upper-case Crockford base32 "
       "characters"},
      {R"({"id": 7, "method": "approve", "params": {"handle": 5}})", 7, ErrorCode::invalid_argument,
       "handle must be a string, not an integer"},
      {contain_line({{"target", unit}, {"reason", "r"}}), 9, ErrorCode::invalid_argument, "action is required"},
      {contain_line({{"action", "nuke_host"}, {"target", unit}, {"reason", "r"}}), 9, ErrorCode::invalid_argument,
       "unknown action 'nuke_host' (expected block_egress, deny_credential, freeze, kill_process or kill_session)"},
      {contain_line({{"action", "freeze"}, {"reason", "r"}}), 9, ErrorCode::invalid_argument, "target is required"},
      {contain_line({{"action", "freeze"}, {"target", {{"unit", "a.service"}, {"host", "x"}}}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument, "unknown field 'host' in target"},
      {contain_line({{"action", "freeze"}, {"target", unit}}), 9, ErrorCode::invalid_argument, "reason is required"},
      {contain_line({{"action", "freeze"}, {"target", unit}, {"reason", ""}}), 9, ErrorCode::invalid_argument,
       "reason is required and must not be empty"},
      {contain_line({{"action", "freeze"}, {"target", unit}, {"reason", std::string(1025, 'x')}}), 9,
       ErrorCode::invalid_argument, "reason is 1025 bytes, more than the maximum of 1024"},
      {contain_line({{"action", "freeze"}, {"target", unit}, {"reason", "a\nb"}}), 9, ErrorCode::invalid_argument,
       "reason must not contain control characters (newlines, tabs, ...)"},
      {contain_line({{"action", "freeze"}, {"target", unit}, {"ttl", "15 minutes"}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument, "invalid ttl '15 minutes': invalid duration \"15 minutes\": "},
      {contain_line({{"action", "freeze"}, {"target", unit}, {"ttl", "0s"}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument, "ttl must be greater than 0"},
      {contain_line({{"action", "freeze"}, {"target", unit}, {"ttl", "2d"}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument, "ttl 2d exceeds the maximum of 1d"},
      {contain_line({{"action", "kill_process"}, {"target", {{"pid", 5}}}, {"ttl", "5m"}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument, "ttl does not apply to kill_process: it cannot be undone, so it cannot expire"},
      {contain_line({{"action", "freeze"}, {"target", json::object()}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument, "freeze needs exactly one of target.unit or target.cgroup"},
      {contain_line(
           {{"action", "block_egress"}, {"target", {{"unit", "a.service"}, {"cgroup", "/a"}}}, {"reason", "r"}}),
       9, ErrorCode::invalid_argument, "block_egress needs exactly one of target.unit or target.cgroup"},
      {contain_line({{"action", "block_egress"}, {"target", {{"pid", 5}}}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument, "target.pid does not apply to block_egress: give target.unit or target.cgroup"},
      {contain_line({{"action", "freeze"},
                     {"target", {{"unit", "a.service"}, {"destinations", {"10.0.0.1"}}}},
                     {"reason", "r"}}),
       9, ErrorCode::invalid_argument, "target.destinations applies to block_egress only"},
      {contain_line({{"action", "block_egress"},
                     {"target", {{"unit", "a.service"}, {"destinations", {"10.0.0.300"}}}},
                     {"reason", "r"}}),
       9, ErrorCode::invalid_argument, "invalid target.destinations '10.0.0.300': "},
      {contain_line({{"action", "block_egress"},
                     {"target", {{"unit", "a.service"}, {"destinations", "10.0.0.1"}}},
                     {"reason", "r"}}),
       9, ErrorCode::invalid_argument, "target.destinations must be an array of strings, not a string"},
      {contain_line({{"action", "freeze"}, {"target", {{"unit", "payments"}}}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument,
       "target.unit 'payments' is not a unit name (expected NAME.service, NAME.scope or NAME.slice)"},
      {contain_line({{"action", "freeze"}, {"target", {{"unit", ""}}}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument, "target.unit must not be empty"},
      {contain_line({{"action", "deny_credential"}, {"target", unit}, {"reason", "r"}}), 9, ErrorCode::invalid_argument,
       "deny_credential needs target.credential"},
      {contain_line({{"action", "deny_credential"}, {"target", {{"credential", "/c"}}}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument,
       "deny_credential needs exactly one of target.unit, target.cgroup or target.pid as the identity denied"},
      {contain_line(
           {{"action", "deny_credential"}, {"target", {{"credential", "creds"}, {"pid", 3}}}, {"reason", "r"}}),
       9, ErrorCode::invalid_argument, "target.credential 'creds' must be an absolute path"},
      {contain_line({{"action", "kill_process"}, {"target", unit}, {"reason", "r"}}), 9, ErrorCode::invalid_argument,
       "kill_process needs target.pid"},
      {contain_line({{"action", "kill_session"}, {"target", {{"pid", 5}, {"unit", "a.service"}}}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument,
       "kill_session takes only target.pid: target.unit, target.cgroup and target.credential do not apply"},
      {contain_line({{"action", "kill_process"}, {"target", {{"pid", 0}}}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument, "target.pid must be between 1 and 4294967295, not 0"},
      {contain_line({{"action", "kill_process"}, {"target", {{"pid", "12"}}}, {"reason", "r"}}), 9,
       ErrorCode::invalid_argument, "target.pid must be an integer, not a string"},
  };
  for (const auto& row : rows) {
    auto parsed = parse_request(row.line);
    ASSERT_FALSE(parsed.has_value()) << row.line;
    EXPECT_EQ(parsed.error().id, row.id) << row.line;
    EXPECT_EQ(parsed.error().error.code, row.code) << row.line;
    // Messages quoting another module's text (durations, destinations) are checked by prefix.
    if (row.message.ends_with(": ")) {
      EXPECT_TRUE(parsed.error().error.message.starts_with(row.message)) << parsed.error().error.message;
      EXPECT_GT(parsed.error().error.message.size(), row.message.size()) << row.line;
    } else {
      EXPECT_EQ(parsed.error().error.message, row.message) << row.line;
    }
  }
}

TEST(ControlProtocol, CliSpellingNamesTheOptions) {
  ContainRequest request;
  request.action = ActionKind::block_egress;
  request.target.pid = 4;
  request.ttl = std::chrono::minutes(15);
  request.reason = "r";
  auto cli = validate_contain_request(request, FieldSpelling::cli);
  ASSERT_FALSE(cli.has_value());
  EXPECT_EQ(cli.error().message, "--pid does not apply to block-egress: give --unit or --cgroup");
  EXPECT_EQ(cli.error().code, EINVAL);

  request.target = {};
  request.target.cgroup = "/x";
  request.ttl = std::chrono::hours(25);
  EXPECT_EQ(validate_contain_request(request, FieldSpelling::cli).error().message,
            "--ttl 1d1h exceeds the maximum of 1d");
  request.ttl = std::chrono::hours(24);
  EXPECT_TRUE(validate_contain_request(request, FieldSpelling::cli).has_value());
  request.reason.clear();
  EXPECT_EQ(validate_contain_request(request, FieldSpelling::cli).error().message,
            "--reason is required and must not be empty");
}

TEST(ControlProtocol, ParamsRoundTrip) {
  ContainRequest contain;
  contain.action = ActionKind::deny_credential;
  contain.target.credential = "/home/svc/.aws/credentials";
  contain.target.unit = "svc.service";
  contain.ttl = std::chrono::minutes(20);
  contain.reason = "canary read";
  auto back = parse_contain_params(to_params(contain));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->action, contain.action);
  EXPECT_EQ(back->target.credential, contain.target.credential);
  EXPECT_EQ(back->target.unit, contain.target.unit);
  EXPECT_EQ(back->ttl, contain.ttl);
  EXPECT_EQ(back->reason, contain.reason);

  ActionsRequest actions{ActionState::held, 3};
  auto actions_back = parse_actions_params(to_params(actions));
  ASSERT_TRUE(actions_back.has_value());
  EXPECT_EQ(actions_back->state, ActionState::held);
  EXPECT_EQ(actions_back->limit, 3u);

  auto request = make_request(5, Method::rollback, to_params(HandleRequest{kHandle}));
  auto parsed = parse_request(request.dump());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().error.message;
  EXPECT_EQ(parsed->id, 5u);
  EXPECT_EQ(parsed->method, Method::rollback);
}

TEST(ControlProtocol, ErrnoMapsToCodes) {
  EXPECT_EQ(error_code_from_errno(ENOENT), ErrorCode::not_found);
  EXPECT_EQ(error_code_from_errno(ESRCH), ErrorCode::not_found);
  EXPECT_EQ(error_code_from_errno(EINVAL), ErrorCode::invalid_argument);
  EXPECT_EQ(error_code_from_errno(ENOTUNIQ), ErrorCode::invalid_argument);
  EXPECT_EQ(error_code_from_errno(EPERM), ErrorCode::refused);
  EXPECT_EQ(error_code_from_errno(EACCES), ErrorCode::refused);
  EXPECT_EQ(error_code_from_errno(ENOSYS), ErrorCode::unavailable);
  EXPECT_EQ(error_code_from_errno(0), ErrorCode::internal);
  EXPECT_EQ(error_code_from_errno(EIO), ErrorCode::internal);
  for (auto code : {ErrorCode::not_found, ErrorCode::invalid_argument, ErrorCode::refused, ErrorCode::internal,
                    ErrorCode::unavailable}) {
    EXPECT_EQ(parse_error_code(to_string(code)), code);
  }
}

TEST(ControlProtocol, ResponsesRoundTripAndMalformedOnesAreRejected) {
  auto ok = parse_response(make_ok_response(3, {{"x", 1}}).dump());
  ASSERT_TRUE(ok.has_value());
  EXPECT_TRUE(ok->ok);
  EXPECT_EQ(ok->id, 3u);
  EXPECT_EQ(ok->result["x"], 1);

  auto error = parse_response(make_error_response(std::nullopt, {ErrorCode::refused, "no"}).dump());
  ASSERT_TRUE(error.has_value());
  EXPECT_FALSE(error->ok);
  EXPECT_FALSE(error->id.has_value());
  EXPECT_EQ(error->error.code, ErrorCode::refused);
  EXPECT_EQ(error->error.message, "no");

  for (const char* bad : {"", "nope", "[]", R"({"id": 1})", R"({"id": 1, "ok": false})"}) {
    auto parsed = parse_response(bad);
    ASSERT_FALSE(parsed.has_value()) << bad;
    EXPECT_EQ(parsed.error().code, EPROTO) << bad;
  }
}

TEST(ControlProtocol, LinesAreSingleLinesEvenWithInvalidUtf8) {
  std::string line = to_line(make_error_response(1, {ErrorCode::internal, "bad \xff byte\nand newline"}));
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_TRUE(parse_response(std::string_view(line).substr(0, line.size() - 1)).has_value());
}

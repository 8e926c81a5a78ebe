// credential_ids.json's table: a path any user can name (`~/.ssh/id_<anything>`) is bytes, not
// UTF-8; it must round-trip exactly through the state file (stored raw, the JSON writer refused it
// and the agent stopped), a table of the earlier format still reads, and a damaged one is refused.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "catalogue/credential_ids.h"
#include "common/state_file.h"

namespace nhiguard::catalogue {
namespace {

TEST(CredentialIds, AnyBytesInAPathRoundTripThroughTheStateFile) {
  const std::map<std::string, uint32_t> ids = {{"/home/u/.ssh/id_\xff\xfe", 1},
                                               {"/home/u/.ssh/id_a\\xffb", 2},  // looks like an escape
                                               {"/home/u/.aws/credentials", 3},
                                               {"/home/u/.config/gcloud/legacy_credentials/\x01/adc.json", 4}};
  const std::string text = render_state_file(credential_ids_to_json(ids));
  auto file = parse_state_file(text, "credential_ids.json");
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_FALSE(file->unchecked);
  auto parsed = parse_credential_ids(file->content);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed, ids);
}

TEST(CredentialIds, ATableOfTheEarlierFormatStillReads) {
  const nlohmann::json legacy = {{"/root/.aws/credentials", 7u}, {"/etc/kubernetes/admin.conf", 9u}};
  auto parsed = parse_credential_ids(legacy);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(*parsed,
            (std::map<std::string, uint32_t>{{"/root/.aws/credentials", 7}, {"/etc/kubernetes/admin.conf", 9}}));
}

TEST(CredentialIds, DamagedTablesAreRefusedAsDamaged) {
  for (const nlohmann::json& bad :
       {nlohmann::json::array(), nlohmann::json{{"/a", 0}}, nlohmann::json{{"/a", 1ull << 33}},
        nlohmann::json{{"/a", "1"}}, nlohmann::json{{"escaped_paths", {{"/a\\q", 1}}}},
        nlohmann::json{{"escaped_paths", {{"/a", -1}}}}, nlohmann::json{{"escaped_paths", 3}},
        nlohmann::json{{"escaped_paths", nlohmann::json::object()}, {"/b", 2}}}) {
    auto parsed = parse_credential_ids(bad);
    ASSERT_FALSE(parsed) << bad.dump();
    EXPECT_EQ(parsed.error().code, EUCLEAN) << bad.dump();
  }
}

// What no state file escapes itself is written replaced, never thrown: a throw here stopped the agent.
TEST(CredentialIds, AStateFileWithAStringThatIsNotUtf8IsStillWritten) {
  const nlohmann::json content = {{"learned", {"/tmp/\xff"}}};
  std::string text;
  EXPECT_NO_THROW(text = render_state_file(content));
  auto file = parse_state_file(text, "learned.json");
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_FALSE(file->unchecked);
}

}  // namespace
}  // namespace nhiguard::catalogue

#include "identity/cmdline_redactor.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <optional>

namespace nhiguard::identity {
namespace {

// ---- characters (ASCII only: argv is bytes, and no secret format uses anything else)

bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
  return is_upper(c) || is_lower(c);
}
bool is_alnum(char c) {
  return is_alpha(c) || is_digit(c);
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool is_quote(char c) {
  return c == '"' || c == '\'' || c == '`';
}
char to_lower(char c) {
  return is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c;
}
// Characters of a key, flag or header name.
bool is_name_char(char c) {
  return is_alnum(c) || c == '_' || c == '.' || c == '-';
}
// Characters of a high-entropy candidate: base64 and base64url ('=' padding is handled apart).
bool is_entropy_char(char c) {
  return is_alnum(c) || c == '+' || c == '/' || c == '_' || c == '-';
}
// Where an unquoted value inside a longer text ends.
bool ends_embedded_value(char c) {
  return is_space(c) || is_quote(c) || c == '&' || c == ';' || c == ',' || c == ')' || c == '}' || c == ']' ||
         c == '<' || c == '>' || c == '|';
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}
bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}
bool equals_lower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (to_lower(s[i]) != lower[i]) return false;
  }
  return true;
}
template <size_t N>
bool one_of(std::string_view s, const std::array<std::string_view, N>& set) {
  return std::find(set.begin(), set.end(), s) != set.end();
}

std::string_view basename_of(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// ---- names that say secret

// Kinds of secret names, most specific first: a name with several ("auth_token") takes the first.
constexpr std::array<std::string_view, 7> kNameKinds = {"password", "token",   "secret", "key",
                                                        "auth",     "session", "cookie"};

// Whether a lowercase word holds a pair of letters that every word below that says secret holds
// (pa, pw, to, be, se, cr, co, ke, au): a cheap test that turns most words away before the lists.
bool may_say_secret(std::string_view w) {
  for (size_t i = 0; i + 1 < w.size(); ++i) {
    const char next = w[i + 1];
    switch (w[i]) {
      case 'p':
        if (next == 'a' || next == 'w') return true;
        break;
      case 't':
        if (next == 'o') return true;
        break;
      case 'b':
      case 's':
      case 'k':
        if (next == 'e') return true;
        break;
      case 'c':
        if (next == 'r' || next == 'o') return true;
        break;
      case 'a':
        if (next == 'u') return true;
        break;
      default:
        break;
    }
  }
  return false;
}

// The kind one lowercase word of a name says, or empty.
std::string_view word_kind(std::string_view w) {
  static constexpr std::array<std::string_view, 8> passwords = {"password",   "passwd",   "pass",      "pwd",
                                                                "passphrase", "passcode", "passwords", "pword"};
  static constexpr std::array<std::string_view, 3> tokens = {"token", "bearer", "pat"};
  static constexpr std::array<std::string_view, 6> secrets = {"secret",      "secrets", "credential",
                                                              "credentials", "creds",   "cred"};
  static constexpr std::array<std::string_view, 2> keys = {"key", "apikey"};
  static constexpr std::array<std::string_view, 2> auths = {"auth", "authorization"};
  // Compounds ending in "key" that name a secret ("apikey", "accesskey"); most words ending in
  // "key" do not ("monkey", "hotkey").
  static constexpr std::array<std::string_view, 24> key_prefixes = {
      "api",          "access",  "secret",  "private", "master", "signing", "encryption", "account",
      "shared",       "storage", "license", "client",  "auth",   "app",     "sas",        "session",
      "subscription", "host",    "admin",   "root",    "deploy", "write",   "hmac",       "aes"};
  if (!may_say_secret(w)) return {};
  if (one_of(w, passwords)) return "password";
  if (one_of(w, tokens)) return "token";
  if (one_of(w, secrets)) return "secret";
  if (one_of(w, keys)) return "key";
  if (one_of(w, auths)) return "auth";
  if (w == "session") return "session";
  if (w == "cookie") return "cookie";
  if (w.find("password") != std::string_view::npos || w.find("passwd") != std::string_view::npos ||
      w.find("passphrase") != std::string_view::npos) {
    return "password";
  }
  if (w.size() > 5 && ends_with(w, "token")) return "token";
  if (w.find("secret") != std::string_view::npos || w.find("credential") != std::string_view::npos) return "secret";
  if (w.size() > 3 && ends_with(w, "key") && one_of(w.substr(0, w.size() - 3), key_prefixes)) return "key";
  return {};
}

// The words of a name, split at non-alphanumerics and camelCase humps, each lowercased:
// "keyStorePassword" -> key store password, "AWS_SECRET_ACCESS_KEY" -> aws secret access key,
// "//registry.npmjs.org/:_authToken" -> registry npmjs org auth token, "HTTPHeader" -> http header.
// Every flag and key=value name of every argv passes through here, so it does not allocate for a
// name of up to kInlineName characters (nearly all of them).
class NameWords {
 public:
  explicit NameWords(std::string_view name) : name_(name) {
    char* lower = inline_.data();
    if (name.size() > inline_.size()) {
      heap_.resize(name.size());
      lower = heap_.data();
    }
    for (size_t i = 0; i < name.size(); ++i) lower[i] = to_lower(name[i]);
    lower_ = std::string_view(lower, name.size());
  }
  NameWords(const NameWords&) = delete;
  NameWords& operator=(const NameWords&) = delete;

  // The next word, lowercased; false when no word is left.
  bool next(std::string_view& word) {
    while (position_ < name_.size() && !is_alnum(name_[position_])) ++position_;
    if (position_ >= name_.size()) return false;
    const size_t begin = position_++;
    while (position_ < name_.size() && is_alnum(name_[position_]) && !starts_word(position_)) ++position_;
    word = lower_.substr(begin, position_ - begin);
    return true;
  }

 private:
  static constexpr size_t kInlineName = 128;
  // Whether the alphanumeric at i (inside a word) begins a new one: a hump ("keyStore", "v2Token")
  // or the last capital of an acronym before a lowercase letter ("HTTPHeader").
  bool starts_word(size_t i) const {
    if (!is_upper(name_[i])) return false;
    const char prev = name_[i - 1];
    return is_lower(prev) || is_digit(prev) || (is_upper(prev) && i + 1 < name_.size() && is_lower(name_[i + 1]));
  }

  std::string_view name_;
  std::array<char, kInlineName> inline_;
  std::string heap_;
  std::string_view lower_;
  size_t position_ = 0;
};

// Words that, after the secret word, say the value is something else: a file, a name, a type...
bool names_something_else(std::string_view w, std::string_view kind) {
  static constexpr std::array<std::string_view, 64> others = {
      "file",      "files",  "filename", "path",       "paths",    "dir",      "directory", "folder",
      "stdin",     "fd",     "env",      "var",        "type",     "name",     "names",     "ids",
      "length",    "len",    "size",     "format",     "fmt",      "mode",     "url",       "uri",
      "endpoint",  "method", "prompt",   "helper",     "jar",      "store",    "sock",      "socket",
      "ttl",       "expiry", "expires",  "expiration", "lifetime", "duration", "timeout",   "version",
      "algorithm", "alg",    "count",    "only",       "required", "enabled",  "disable",   "disabled",
      "location",  "region", "arn",      "ref",        "source",   "src",      "provider",  "backend",
      "level",     "scope",  "scopes",   "policy",     "rotation", "header",   "command",   "cmd"};
  if (one_of(w, others)) return true;
  // A key's id is public ("--key-id", "aws_access_key_id"); a secret's or a session's is not.
  return w == "id" && kind == "key";
}

// The kind a flag, key or header name says, or empty when it names no secret.
std::string_view secret_kind_of_name(std::string_view name) {
  std::string_view best;
  size_t best_rank = kNameKinds.size();
  size_t best_index = 0;
  size_t count = 0;
  {
    NameWords words(name);
    for (std::string_view word; words.next(word); ++count) {
      if (count == 0 && word == "no") return {};
      if (word == "public") return {};
      const std::string_view kind = word_kind(word);
      if (kind.empty()) continue;
      const size_t rank =
          static_cast<size_t>(std::find(kNameKinds.begin(), kNameKinds.end(), kind) - kNameKinds.begin());
      if (rank < best_rank) {
        best = kind;
        best_rank = rank;
        best_index = count;
      }
    }
  }
  if (best.empty()) return {};
  // The weak words (key, auth, session, cookie) name a secret only at the end of the name, or
  // before a word that says "its value": StrictHostKeyChecking and auth_mechanism are settings.
  static constexpr std::array<std::string_view, 8> value_words = {"value", "data",   "material", "string",
                                                                  "b64",   "base64", "hex",      "raw"};
  const bool weak = best == "key" || best == "auth" || best == "session" || best == "cookie";
  NameWords words(name);
  size_t index = 0;
  for (std::string_view word; words.next(word); ++index) {
    if (index <= best_index) continue;
    if (names_something_else(word, best)) return {};
    if (weak && !one_of(word, value_words)) return {};
  }
  return best;
}

// ---- spans: what to replace in one argument

// Which finding says the most when two cover the same bytes.
enum class Source { entropy = 0, structure = 1, format = 2 };

struct Span {
  size_t begin = 0;
  size_t end = 0;
  std::string_view kind;
  Source source = Source::structure;
  bool percent_encoded = false;  // a URL part: fingerprinted decoded
};

struct ArgSpans {
  std::vector<Span> spans;
  void add(size_t begin, size_t end, std::string_view kind, Source source, bool percent_encoded = false) {
    if (begin < end) spans.push_back({begin, end, kind, source, percent_encoded});
  }
};

// One word that the argv rules look at: all of argument `arg`, or a whitespace-separated part of it.
struct Word {
  size_t arg = 0;
  size_t begin = 0;
  std::string_view text;
  bool cut = false;  // ends where a length limit cut the argv
};

// ---- markers

// `<redacted:KIND:FP>` markers already present: left alone.
std::vector<std::pair<size_t, size_t>> find_markers(std::string_view s) {
  std::vector<std::pair<size_t, size_t>> out;
  static constexpr std::string_view open = "<redacted:";
  for (size_t at = s.find(open); at != std::string_view::npos; at = s.find(open, at + 1)) {
    size_t i = at + open.size();
    const size_t kind_begin = i;
    while (i < s.size() && (is_lower(s[i]) || is_digit(s[i]) || s[i] == '_')) ++i;
    if (i == kind_begin || i >= s.size() || s[i] != ':') continue;
    ++i;
    const size_t fp_begin = i;
    while (i < s.size() && (is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f'))) ++i;
    if (i - fp_begin != kFingerprintHexDigits || i >= s.size() || s[i] != '>') continue;
    out.emplace_back(at, i + 1);
  }
  return out;
}

// ---- argv rules (flags, tools, positionals), over one command's words

struct Tool {
  std::string_view name;
  size_t first_argument = 1;  // index of the tool's first argument in the command's words
};

// Wrappers that run another command, and which of their options take a value.
struct Wrapper {
  std::string_view name;
  std::string_view options_with_value;  // single letters
  size_t positionals = 0;               // leading positionals before the command (timeout's duration)
  bool skips_assignments = false;       // env's VAR=value
};
constexpr std::array<Wrapper, 12> kWrappers = {{{"env", "uCS", 0, true},
                                                {"sudo", "ughpCDrtUT", 0, false},
                                                {"doas", "uC", 0, false},
                                                {"nice", "n", 0, false},
                                                {"ionice", "cnp", 0, false},
                                                {"timeout", "sk", 1, false},
                                                {"nohup", "", 0, false},
                                                {"setsid", "", 0, false},
                                                {"time", "", 0, false},
                                                {"exec", "", 0, false},
                                                {"command", "", 0, false},
                                                {"stdbuf", "ioe", 0, false}}};

Tool find_tool(std::span<const Word> words) {
  size_t i = 0;
  while (i < words.size()) {
    const std::string_view name = basename_of(words[i].text);
    const auto wrapper =
        std::find_if(kWrappers.begin(), kWrappers.end(), [&](const Wrapper& w) { return w.name == name; });
    if (wrapper == kWrappers.end()) return {name, i + 1};
    ++i;
    size_t positionals = wrapper->positionals;
    while (i < words.size()) {
      const std::string_view t = words[i].text;
      if (t == "--") {
        ++i;
        break;
      }
      if (t.size() > 1 && t[0] == '-') {
        // "-u root": the value is the next word; "-uroot" and "--user=root" carry it.
        if (t.size() == 2 && wrapper->options_with_value.find(t[1]) != std::string_view::npos) ++i;
        ++i;
      } else if (wrapper->skips_assignments && t.find('=') != std::string_view::npos) {
        ++i;
      } else if (positionals > 0) {
        --positionals;
        ++i;
      } else {
        break;
      }
    }
  }
  return {"", words.size()};
}

bool is_mysql_tool(std::string_view tool) {
  return starts_with(tool, "mysql") || starts_with(tool, "mariadb");
}
bool is_mongo_tool(std::string_view tool) {
  return starts_with(tool, "mongo");
}
bool is_registry_login_tool(std::string_view tool) {
  static constexpr std::array<std::string_view, 10> tools = {"docker", "podman", "nerdctl", "buildah", "skopeo",
                                                             "helm",   "oras",   "az",      "regctl",  "crane"};
  return one_of(tool, tools);
}
bool is_curl(std::string_view tool) {
  return tool == "curl";
}
bool is_httpie(std::string_view tool) {
  return tool == "http" || tool == "https" || tool == "httpie";
}
// Tools with rules of their own: where one appears inside another's argv (`docker exec db mysql
// -pX`, `kubectl exec pod -- redis-cli -a X`), its rules apply from there on.
bool has_own_rules(std::string_view tool) {
  return is_mysql_tool(tool) || is_mongo_tool(tool) || is_curl(tool) || tool == "sshpass" || tool == "redis-cli" ||
         tool == "sqlcmd" || tool == "bcp" || starts_with(tool, "ldap") || tool == "vault" || tool == "gh";
}

// A short option of this tool whose value is a secret, with the kind; a user:password value is
// "user_password" (only the part after the first ':' is secret).
std::string_view secret_short_option(std::string_view tool, char option, bool has_login) {
  if (is_mysql_tool(tool) && option == 'p') return "password";
  if ((tool == "sshpass" || is_mongo_tool(tool)) && option == 'p') return "password";
  if (is_registry_login_tool(tool) && has_login && option == 'p') return "password";
  if (tool == "redis-cli" && option == 'a') return "password";
  if ((tool == "sqlcmd" || tool == "bcp") && option == 'P') return "password";
  if (starts_with(tool, "ldap") && option == 'w') return "password";
  if (is_curl(tool) && (option == 'u' || option == 'U')) return "user_password";
  if (is_curl(tool) && option == 'b') return "cookie";
  if (is_httpie(tool) && option == 'a') return "user_password";
  return {};
}

// Marks a value: all of it, or for "user_password" what follows the first ':'.
void mark_value(std::vector<ArgSpans>& spans, const Word& word, size_t offset, std::string_view kind) {
  std::string_view value = word.text.substr(offset);
  size_t skip = 0;
  if (kind == "user_password") {
    const size_t colon = value.find(':');
    if (colon == std::string_view::npos) return;  // a user alone: the tool prompts for the password
    skip = colon + 1;
    kind = "password";
  }
  spans[word.arg].add(word.begin + offset + skip, word.begin + word.text.size(), kind, Source::structure);
}

void apply_command_rules(std::span<const Word> words, std::vector<ArgSpans>& spans) {
  Tool tool = find_tool(words);
  bool has_login = false;
  for (size_t i = tool.first_argument; i < words.size(); ++i) has_login = has_login || words[i].text == "login";

  std::string_view pending;  // a secret flag's kind: the next word is its value
  bool pending_unless_flag = false;
  bool vault_login_seen = false;
  std::string_view previous;
  static constexpr std::array<std::string_view, 8> setters = {"set",      "config",     "--global", "--local",
                                                              "--system", "--worktree", "--add",    "--replace-all"};
  for (size_t i = tool.first_argument; i < words.size(); previous = words[i].text, ++i) {
    const Word& word = words[i];
    const std::string_view t = word.text;
    if (!pending.empty()) {
      const std::string_view kind = pending;
      pending = {};
      if (!(pending_unless_flag && starts_with(t, "-"))) {
        mark_value(spans, word, 0, kind);
        continue;
      }
    }
    pending_unless_flag = false;
    if (const std::string_view name = basename_of(t); name != tool.name && has_own_rules(name)) {
      tool.name = name;
      vault_login_seen = false;
      continue;
    }
    if (t.size() >= 2 && t[0] == '-' && t[1] != '-') {
      // A short option of this tool: "-p PW", "-pPW" (mysql's bare "-p" prompts instead).
      if (const std::string_view kind = secret_short_option(tool.name, t[1], has_login); !kind.empty()) {
        if (t.size() > 2) {
          mark_value(spans, word, 2, kind);
        } else if (!is_mysql_tool(tool.name)) {
          pending = kind;
        }
        continue;
      }
    }
    if (t.size() > 2 && t[0] == '-') {
      // "--password PW", "-token PW": the value is the next word. "--flag=value" is found by the
      // text scan, as any key=value is.
      if (t.find('=') != std::string_view::npos) continue;
      // A flag is dashes and a name: a word with other characters ("-x).read(): Bearer T") is text,
      // whose findings the text scans make. Judging it as a flag would also let a marker that
      // replaced its '=' turn it into one on a second pass.
      if (!std::all_of(t.begin(), t.end(), is_name_char)) continue;
      if (tool.name == "gh" && t == "--with-token") {
        pending = "token";
        pending_unless_flag = true;
        continue;
      }
      if (is_curl(tool.name) && (t == "--user" || t == "--proxy-user")) {
        pending = "user_password";
        continue;
      }
      if (is_httpie(tool.name) && t == "--auth") {
        pending = "user_password";
        continue;
      }
      if (is_mysql_tool(tool.name) && t == "--password") continue;  // prompts; the next word is a database
      pending = secret_kind_of_name(t);
      continue;
    }
    if (tool.name == "vault" && !vault_login_seen && t == "login") {
      vault_login_seen = true;
      continue;
    }
    // What an earlier pass made of a word: one whole marker is a value already taken (it consumes
    // vault's positional as the value it replaced did); a word holding a marker had a finding
    // inside, which a value never has, so it is read as the word with an '=' it may have been.
    const auto markers = find_markers(t);
    const bool is_marker = markers.size() == 1 && markers[0].first == 0 && markers[0].second == t.size();
    const bool holds_marker = !markers.empty() && !is_marker;
    if (vault_login_seen && t != "-" && !t.empty() && t.find('=') == std::string_view::npos && !holds_marker) {
      mark_value(spans, word, 0, "vault_token");
      vault_login_seen = false;
      continue;
    }
    // "aws configure set aws_secret_access_key X", "git config --global x.password X". A setting's
    // name has a '_', '.', ':' or '/' (a subcommand such as set-credentials has none).
    if (one_of(previous, setters) && markers.empty() && t.find('=') == std::string_view::npos &&
        t.find_first_of("_.:/") != std::string_view::npos) {
      pending = secret_kind_of_name(t);
    }
  }
  // A secret flag whose value the length limit cut off entirely leaves nothing to mark.
}

// The words of an argument with whitespace (a shell snippet, `python3 -c` code, a conninfo), split
// into commands at shell operators so each command's tool is found. Quotes around a word are dropped.
std::vector<std::vector<Word>> split_commands(const std::string& arg, size_t arg_index, bool cut) {
  std::vector<std::vector<Word>> commands(1);
  // Code separates words with punctuation too: run(['vault', 'login', X]).
  auto separates = [](char c) {
    return is_space(c) || c == ',' || c == '(' || c == ')' || c == '[' || c == ']' || c == '{' || c == '}';
  };
  size_t i = 0;
  while (i < arg.size()) {
    while (i < arg.size() && separates(arg[i])) ++i;
    size_t begin = i;
    while (i < arg.size() && !separates(arg[i])) ++i;
    size_t end = i;
    const bool at_cut = cut && end == arg.size();
    std::string_view text(arg.data() + begin, end - begin);
    bool ends_command = false;
    if (text == "|" || text == "||" || text == "&&" || text == ";" || text == "&") {
      if (!commands.back().empty()) commands.emplace_back();
      continue;
    }
    while (!text.empty() && (text.back() == ';' || text.back() == '|')) {
      text.remove_suffix(1);
      ends_command = true;
    }
    // Code around a word: python3 -c "run(['--password', 'X'])" has the words --password and X.
    static constexpr std::string_view leading = "\"'`([{", trailing = "\"'`)]},";
    while (!text.empty() && leading.find(text.front()) != std::string_view::npos) {
      text.remove_prefix(1);
      ++begin;
    }
    while (!text.empty() && trailing.find(text.back()) != std::string_view::npos) text.remove_suffix(1);
    if (!text.empty()) commands.back().push_back({arg_index, begin, text, at_cut});
    if (ends_command && !commands.back().empty()) commands.emplace_back();
  }
  return commands;
}

// ---- text scans, inside every argument

// What a length limit may have left of a PEM label: capitals, digits and spaces ("OPENSSH PRIV").
bool could_be_cut_label(std::string_view label) {
  return std::all_of(label.begin(), label.end(), [](char c) { return is_upper(c) || is_digit(c) || c == ' '; });
}

// `cut`: s ends where a length limit cut it. A BEGIN line whose label never closes is a private key
// only then, and only if what is left could be a label: otherwise the "-----" that closed it may
// have been inside a value that a finding turned into a marker, and a second pass would see a
// private key the first did not.
void scan_private_keys(std::string_view s, bool cut, ArgSpans& out) {
  static constexpr std::string_view begin_tag = "-----BEGIN ";
  for (size_t at = s.find(begin_tag); at != std::string_view::npos; at = s.find(begin_tag, at + 1)) {
    const size_t label_begin = at + begin_tag.size();
    const size_t label_end = s.find("-----", label_begin);
    const std::string_view label =
        s.substr(label_begin, label_end == std::string_view::npos ? std::string_view::npos : label_end - label_begin);
    if (label_end == std::string_view::npos) {
      if (!cut || !could_be_cut_label(label)) continue;
    } else if (label.find("PRIVATE KEY") == std::string_view::npos) {
      continue;
    }
    size_t end = s.size();
    if (label_end != std::string_view::npos) {
      if (const size_t end_tag = s.find("-----END ", label_end + 5); end_tag != std::string_view::npos) {
        const size_t close = s.find("-----", end_tag + 9);
        end = close == std::string_view::npos ? s.size() : close + 5;
      }
    }
    out.add(at, end, "private_key", Source::format);
    at = end - 1;
  }
}

enum class Charset { upper_digit, alnum, alnum_underscore, alnum_dash, base64url, hex };
bool in_charset(char c, Charset set) {
  switch (set) {
    case Charset::upper_digit:
      return is_upper(c) || is_digit(c);
    case Charset::alnum:
      return is_alnum(c);
    case Charset::alnum_underscore:
      return is_alnum(c) || c == '_';
    case Charset::alnum_dash:
      return is_alnum(c) || c == '-';
    case Charset::base64url:
      return is_alnum(c) || c == '_' || c == '-';
    case Charset::hex:
      return is_hex(c);
  }
  return false;
}

struct TokenFormat {
  std::string_view prefix;
  std::string_view kind;
  Charset charset;
  size_t min_rest;  // characters after the prefix
  bool exact;       // exactly min_rest, then no further character of the set
};
constexpr std::array<TokenFormat, 45> kTokenFormats = {{
    {"AKIA", "aws_access_key_id", Charset::upper_digit, 16, true},
    {"ASIA", "aws_access_key_id", Charset::upper_digit, 16, true},
    {"AGPA", "aws_access_key_id", Charset::upper_digit, 16, true},
    {"AIDA", "aws_access_key_id", Charset::upper_digit, 16, true},
    {"AROA", "aws_access_key_id", Charset::upper_digit, 16, true},
    {"AIPA", "aws_access_key_id", Charset::upper_digit, 16, true},
    {"ANPA", "aws_access_key_id", Charset::upper_digit, 16, true},
    {"ANVA", "aws_access_key_id", Charset::upper_digit, 16, true},
    {"ABIA", "aws_access_key_id", Charset::upper_digit, 16, true},
    {"ACCA", "aws_access_key_id", Charset::upper_digit, 16, true},
    {"ghp_", "github_token", Charset::alnum, 30, false},
    {"gho_", "github_token", Charset::alnum, 30, false},
    {"ghu_", "github_token", Charset::alnum, 30, false},
    {"ghs_", "github_token", Charset::alnum, 30, false},
    {"ghr_", "github_token", Charset::alnum, 30, false},
    {"github_pat_", "github_token", Charset::alnum_underscore, 22, false},
    {"glpat-", "gitlab_token", Charset::base64url, 20, false},
    {"gloas-", "gitlab_token", Charset::base64url, 20, false},
    {"gldt-", "gitlab_token", Charset::base64url, 20, false},
    {"glrt-", "gitlab_token", Charset::base64url, 20, false},
    {"glptt-", "gitlab_token", Charset::base64url, 20, false},
    {"glsoat-", "gitlab_token", Charset::base64url, 20, false},
    {"xoxa-", "slack_token", Charset::alnum_dash, 10, false},
    {"xoxb-", "slack_token", Charset::alnum_dash, 10, false},
    {"xoxp-", "slack_token", Charset::alnum_dash, 10, false},
    {"xoxr-", "slack_token", Charset::alnum_dash, 10, false},
    {"xoxs-", "slack_token", Charset::alnum_dash, 10, false},
    {"xoxe-", "slack_token", Charset::alnum_dash, 10, false},
    {"xoxe.xoxp-", "slack_token", Charset::alnum_dash, 10, false},
    {"xapp-", "slack_token", Charset::alnum_dash, 10, false},
    {"hvs.", "vault_token", Charset::base64url, 20, false},
    {"hvb.", "vault_token", Charset::base64url, 20, false},
    {"hvr.", "vault_token", Charset::base64url, 20, false},
    {"sk_live_", "stripe_key", Charset::alnum, 16, false},
    {"sk_test_", "stripe_key", Charset::alnum, 16, false},
    {"rk_live_", "stripe_key", Charset::alnum, 16, false},
    {"rk_test_", "stripe_key", Charset::alnum, 16, false},
    {"whsec_", "stripe_key", Charset::alnum, 24, false},
    {"AIza", "google_api_key", Charset::base64url, 35, true},
    {"ya29.", "google_oauth_token", Charset::base64url, 20, false},
    {"GOCSPX-", "google_oauth_token", Charset::base64url, 20, false},
    {"npm_", "npm_token", Charset::alnum, 36, true},
    {"pypi-AgEI", "pypi_token", Charset::base64url, 16, false},
    {"dop_v1_", "digitalocean_token", Charset::hex, 64, true},
    {"doo_v1_", "digitalocean_token", Charset::hex, 64, true},
}};

// For each byte, the formats whose prefix starts with it (bit i: kTokenFormats[i]), so a position
// costs one table load instead of a pass over every format.
static_assert(kTokenFormats.size() <= 64);
constexpr std::array<uint64_t, 256> kFormatsByFirstByte = [] {
  std::array<uint64_t, 256> table{};
  for (size_t i = 0; i < kTokenFormats.size(); ++i) {
    table[static_cast<unsigned char>(kTokenFormats[i].prefix[0])] |= uint64_t{1} << i;
  }
  return table;
}();

size_t run_of(std::string_view s, size_t from, Charset set) {
  size_t i = from;
  while (i < s.size() && in_charset(s[i], set)) ++i;
  return i - from;
}

// `cut`: s ends where a length limit cut it, so a token reaching its end may be longer.
void scan_token_formats(std::string_view s, bool cut, ArgSpans& out) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && is_alnum(s[i - 1])) continue;
    // Legacy Vault tokens: "s." or "b." and 24 alphanumerics, as a word of their own.
    if ((s[i] == 's' || s[i] == 'b') && i + 1 < s.size() && s[i + 1] == '.' && (i == 0 || s[i - 1] != '.')) {
      const size_t n = run_of(s, i + 2, Charset::alnum);
      if (n == 24 || (cut && i + 2 + n == s.size() && n > 0 && n < 24)) {
        out.add(i, i + 2 + n, "vault_token", Source::format);
        i += 1 + n;
        continue;
      }
    }
    if (s[i] == 'e' && starts_with(s.substr(i), "eyJ")) {
      // A JWT: three base64url segments; the last (the signature) may be empty ("alg": "none").
      const size_t header = run_of(s, i, Charset::base64url);
      size_t end = i + header;
      bool jwt = false;
      if (header >= 10 && end < s.size() && s[end] == '.') {
        const size_t payload = run_of(s, end + 1, Charset::base64url);
        if (payload >= 8 && end + 1 + payload < s.size() && s[end + 1 + payload] == '.') {
          end += 2 + payload;
          end += run_of(s, end, Charset::base64url);
          jwt = true;
        } else if (cut && end + 1 + payload == s.size()) {
          end = s.size();
          jwt = true;
        }
      } else if (cut && header >= 10 && end == s.size()) {
        jwt = true;
      }
      if (jwt) {
        out.add(i, end, "jwt", Source::format);
        i = end - 1;
        continue;
      }
    }
    for (uint64_t candidates = kFormatsByFirstByte[static_cast<unsigned char>(s[i])]; candidates != 0;
         candidates &= candidates - 1) {
      const TokenFormat& f = kTokenFormats[static_cast<size_t>(std::countr_zero(candidates))];
      if (!starts_with(s.substr(i), f.prefix)) continue;
      const size_t rest_begin = i + f.prefix.size();
      const size_t n = run_of(s, rest_begin, f.charset);
      const bool reaches_cut = cut && rest_begin + n == s.size() && n > 0;
      bool match = f.exact ? n == f.min_rest : n >= f.min_rest;
      // An exact-length id followed by more letters or digits is a longer word, not the id.
      if (f.exact && match && rest_begin + n < s.size() && is_alnum(s[rest_begin + n])) match = false;
      if (match || (reaches_cut && n < f.min_rest)) {
        out.add(i, rest_begin + n, f.kind, Source::format);
        i = rest_begin + n - 1;
        break;
      }
    }
  }
}

double shannon_entropy(std::string_view s) {
  std::array<unsigned, 256> counts{};
  for (const char c : s) ++counts[static_cast<unsigned char>(c)];
  double bits = 0;
  const double n = static_cast<double>(s.size());
  for (const unsigned count : counts) {
    if (count == 0) continue;
    const double p = count / n;
    bits -= p * std::log2(p);
  }
  return bits;
}

// Whether a run of entropy characters looks like a random secret (thresholds in the header).
bool looks_random(std::string_view run) {
  while (!run.empty() && run.back() == '=') run.remove_suffix(1);
  const size_t length = run.size();
  if (length < kMinEntropyLength) return false;
  size_t upper = 0, lower = 0, digits = 0, longest_piece = 0, piece = 0;
  bool hex_only = true;
  for (const char c : run) {
    upper += is_upper(c);
    lower += is_lower(c);
    digits += is_digit(c);
    if (!is_hex(c) && c != '-') hex_only = false;
    if (c == '-' || c == '_' || c == '/' || c == '+') {
      piece = 0;
    } else {
      longest_piece = std::max(longest_piece, ++piece);
    }
  }
  // Digests, commit ids and UUIDs are kept (see the header).
  if (hex_only) return false;
  if (longest_piece < (length >= 32 ? 16u : 12u)) return false;
  const size_t letters = upper + lower;
  const double log_length = std::log2(static_cast<double>(length));
  double threshold = 0;
  if (upper > 0 && lower > 0 && digits > 0) {
    const double upper_share = static_cast<double>(upper) / static_cast<double>(letters);
    if (upper_share < 0.2 || upper_share > 0.8) return false;
    threshold = std::min(kEntropyFactor * log_length, 4.3);
  } else if (digits > 0 && letters > 0) {
    if (length < 24 || digits < 2 || letters < 2) return false;
    threshold = std::min(0.78 * log_length, 4.1);
  } else if (upper > 0 && lower > 0) {
    const double upper_share = static_cast<double>(upper) / static_cast<double>(letters);
    if (length < 24 || upper_share < 0.3 || upper_share > 0.7) return false;
    threshold = std::min(kEntropyFactor * log_length, 4.3);
  } else {
    return false;
  }
  return shannon_entropy(run) >= threshold;
}

// A 40-character base64 run (AWS secret access keys have that shape).
std::string_view random_kind(std::string_view run) {
  if (run.size() != 40) return "high_entropy";
  for (const char c : run) {
    if (!(is_alnum(c) || c == '+' || c == '/')) return "high_entropy";
  }
  return "aws_secret_key";
}

// Judges [begin, end) whole, or, when it is a path or not random as a whole, piece by piece: the
// '/' segments of a path, then the parts between separators ("x-<token>", "/tmp/<token>/out").
void judge_run(std::string_view s, size_t begin, size_t end, size_t padded_end, ArgSpans& out) {
  // Neither the run nor any piece of it can be long enough (padding does not count).
  if (end - begin < kMinEntropyLength) return;
  const std::string_view run = s.substr(begin, padded_end - begin);
  const bool has_slash = run.find('/') != std::string_view::npos;
  const bool path_like = has_slash && (s[begin] == '/' || (begin > 0 && (s[begin - 1] == '~' || s[begin - 1] == '.')));
  if (!path_like && looks_random(run)) {
    out.add(begin, padded_end, random_kind(s.substr(begin, end - begin)), Source::entropy);
    return;
  }
  std::vector<std::pair<size_t, size_t>> flagged;
  size_t piece = begin;
  while (piece < end) {
    size_t piece_end = piece;
    while (piece_end < end && s[piece_end] != '/' && s[piece_end] != '-' && s[piece_end] != '_' &&
           s[piece_end] != '+') {
      ++piece_end;
    }
    const size_t with_padding = piece_end == end ? padded_end : piece_end;
    if (looks_random(s.substr(piece, with_padding - piece))) {
      out.add(piece, with_padding, "high_entropy", Source::entropy);
      flagged.emplace_back(piece, with_padding);
    }
    piece = piece_end + 1;
  }
  // What is left between flagged pieces is a run of its own once they are markers: judge it as
  // such now, so a second pass finds nothing new.
  if (flagged.empty()) return;
  size_t rest = begin;
  flagged.emplace_back(padded_end, padded_end);
  for (const auto& [fb, fe] : flagged) {
    if (fb > rest && !(rest == begin && fb == padded_end)) judge_run(s, rest, std::min(fb, end), fb, out);
    rest = fe;
  }
}

// Runs of entropy characters outside what the other scans found: a run ends where a finding
// begins, as it ends at the marker that finding becomes, so a second pass sees the same runs.
void scan_entropy(std::string_view s, ArgSpans& out) {
  // Most arguments have no finding: then nothing is marked and nothing is allocated.
  std::vector<bool> found(out.spans.empty() ? 0 : s.size(), false);
  for (const Span& span : out.spans) {
    for (size_t k = span.begin; k < span.end && k < s.size(); ++k) found[k] = true;
  }
  const bool none_found = found.empty();
  auto eligible = [&](size_t k) { return (none_found || !found[k]) && is_entropy_char(s[k]); };
  size_t i = 0;
  while (i < s.size()) {
    if (!eligible(i)) {
      ++i;
      continue;
    }
    const size_t begin = i;
    while (i < s.size() && eligible(i)) ++i;
    size_t padded_end = i;
    while (padded_end < s.size() && (none_found || !found[padded_end]) && s[padded_end] == '=')
      ++padded_end;  // base64 padding
    judge_run(s, begin, i, padded_end, out);
    i = padded_end;
  }
}

size_t skip_spaces(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return i;
}

// The value starting at i: quoted (to its closing quote), or to the end of the argument when the
// name began the argument, or to the first character that ends a value inside longer text.
// `to_line_end`: a header value such as a cookie, which holds spaces and ';'.
std::pair<size_t, size_t> value_at(std::string_view s, size_t i, bool whole_argument, bool to_line_end) {
  if (i < s.size() && is_quote(s[i])) {
    const char q = s[i];
    const size_t close = s.find(q, i + 1);
    return {i + 1, close == std::string_view::npos ? s.size() : close};
  }
  if (whole_argument) {
    // To the end, or to a ',' that starts another pair: helm's --set a.password=X,b=Y.
    for (size_t comma = s.find(',', i); comma != std::string_view::npos; comma = s.find(',', comma + 1)) {
      size_t k = comma + 1;
      while (k < s.size() && is_name_char(s[k])) ++k;
      if (k > comma + 1 && k < s.size() && s[k] == '=') return {i, comma};
    }
    return {i, s.size()};
  }
  size_t end = i;
  if (to_line_end) {
    while (end < s.size() && s[end] != '\n' && s[end] != '\r' && !is_quote(s[end])) ++end;
  } else {
    while (end < s.size() && !ends_embedded_value(s[end])) ++end;
  }
  return {i, end};
}

// NAME=VALUE, NAME: VALUE, "NAME": "VALUE", headers, and "Bearer TOKEN".
// `code`: the argument is a program (the one after -c), whose first pair does not own the rest.
void scan_assignments(std::string_view s, bool code, ArgSpans& out) {
  size_t i = 0;
  while (i < s.size()) {
    if (!is_name_char(s[i]) || (i > 0 && is_name_char(s[i - 1]))) {
      ++i;
      continue;
    }
    const size_t name_begin = i;
    while (i < s.size() && is_name_char(s[i])) ++i;
    const std::string_view name = s.substr(name_begin, i - name_begin);
    const size_t name_end = i;
    size_t at = name_end;
    const bool quoted_name = at < s.size() && is_quote(s[at]) && name_begin > 0 && s[name_begin - 1] == s[at];
    if (quoted_name) ++at;
    at = skip_spaces(s, at);

    if (equals_lower(name, "bearer") && at > name_end && at < s.size()) {
      // "Bearer TOKEN" in any text (code, a header in a shell snippet).
      size_t end = at;
      while (end < s.size() && (is_alnum(s[end]) || std::string_view("._~+/=-").find(s[end]) != std::string_view::npos))
        ++end;
      if (end - at >= 8) {
        out.add(at, end, "bearer", Source::structure);
        i = end;
        continue;
      }
    }
    if (at >= s.size() || (s[at] != '=' && s[at] != ':')) continue;
    const char separator = s[at];
    if (separator == ':' && s.substr(at, 3) == "://") continue;  // a URL's scheme
    // scheme://user:password@ is userinfo, which scan_urls reads (its value ends at the '@').
    if (separator == ':' && name_begin >= 3 && s.substr(name_begin - 3, 3) == "://") continue;
    const std::string_view kind = secret_kind_of_name(name);
    if (kind.empty()) continue;  // scanning goes on inside the value: "--from-literal=password=X"
    // The whole argument is this pair when the name starts it (after a flag's dashes).
    size_t lead = 0;
    while (lead < name.size() && name[lead] == '-') ++lead;
    const bool whole_argument = name_begin == 0 && !code;
    size_t value_begin = skip_spaces(s, at + 1);
    const bool authorization =
        equals_lower(name.substr(lead), "authorization") || equals_lower(name.substr(lead), "proxy-authorization");
    const bool cookie = equals_lower(name.substr(lead), "cookie") || equals_lower(name.substr(lead), "set-cookie");
    if (separator == ':' && authorization) {
      auto [vb, ve] = value_at(s, value_begin, whole_argument, true);
      // Keep the scheme word ("Bearer", "Basic"): it says what kind of credential went.
      size_t scheme_end = vb;
      while (scheme_end < ve && is_alpha(s[scheme_end])) ++scheme_end;
      std::string_view header_kind = "authorization";
      if (scheme_end > vb && scheme_end < ve && (s[scheme_end] == ' ' || s[scheme_end] == '\t')) {
        const std::string_view scheme = s.substr(vb, scheme_end - vb);
        if (equals_lower(scheme, "bearer")) header_kind = "bearer";
        if (equals_lower(scheme, "basic")) header_kind = "basic";
        const size_t credential = skip_spaces(s, scheme_end);
        if (!equals_lower(scheme, "digest") && !whole_argument && vb == value_begin) {
          // Unquoted inside longer text: the credential ends where a word does.
          size_t end = credential;
          while (end < ve && !is_space(s[end])) ++end;
          ve = end;
        }
        vb = credential;
      }
      out.add(vb, ve, header_kind, Source::structure);
      i = std::max(i, ve);
      continue;
    }
    auto [vb, ve] = value_at(s, value_begin, whole_argument, separator == ':' && cookie);
    if (vb == ve) continue;
    out.add(vb, ve, kind, Source::structure);
    i = std::max(i, ve);
  }
}

// Percent-decoding for a URL part's fingerprint; malformed escapes stay as they are.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool matches_token_format(std::string_view s) {
  ArgSpans spans;
  scan_token_formats(s, false, spans);
  for (const Span& span : spans.spans) {
    if (span.begin == 0 && span.end == s.size()) return true;
  }
  return false;
}

// USER:PASSWORD in userinfo [begin, end): the password, or a user that is itself a token.
void mark_userinfo(std::string_view s, size_t begin, size_t end, ArgSpans& out) {
  const size_t colon = s.find(':', begin);
  if (colon != std::string_view::npos && colon < end) {
    out.add(colon + 1, end, "url_password", Source::structure, true);
    return;
  }
  const std::string_view user = s.substr(begin, end - begin);
  if (matches_token_format(user) || looks_random(user)) out.add(begin, end, "url_token", Source::structure, true);
}

// scheme://USERINFO@host, and USER:PASSWORD@host without a scheme (Go DSNs, scp-like specs).
void scan_urls(std::string_view s, ArgSpans& out) {
  // Markers are opaque here: the ':' of `<redacted:KIND:FP>` is no userinfo separator, and a
  // marker where a host's name was must leave the URL read as the first pass read it.
  std::string masked;
  if (const auto markers = find_markers(s); !markers.empty()) {
    masked.assign(s);
    for (const auto& [mb, me] : markers)
      std::fill(masked.begin() + static_cast<std::ptrdiff_t>(mb), masked.begin() + static_cast<std::ptrdiff_t>(me),
                'x');
    s = masked;
  }
  for (size_t at = s.find("://"); at != std::string_view::npos; at = s.find("://", at + 3)) {
    size_t scheme = at;
    while (scheme > 0 &&
           (is_alnum(s[scheme - 1]) || s[scheme - 1] == '+' || s[scheme - 1] == '.' || s[scheme - 1] == '-')) {
      --scheme;
    }
    // A scheme starts with a letter: "-x+https://" holds the scheme "x+https".
    while (scheme < at && !is_alpha(s[scheme])) ++scheme;
    if (scheme == at) continue;
    const size_t authority = at + 3;
    size_t stop = authority;  // where the URL cannot go on
    while (stop < s.size() && !is_space(s[stop]) && !is_quote(s[stop])) ++stop;
    size_t authority_end = authority;
    while (authority_end < stop && s[authority_end] != '/' && s[authority_end] != '?' && s[authority_end] != '#') {
      ++authority_end;
    }
    size_t userinfo_end = std::string_view::npos;
    if (const size_t last_at = s.rfind('@', authority_end == authority ? authority : authority_end - 1);
        last_at != std::string_view::npos && last_at >= authority && last_at < authority_end) {
      userinfo_end = last_at;
    } else if (const size_t first_at = s.find('@', authority); first_at != std::string_view::npos && first_at < stop) {
      // A password with an unescaped '/' or '?': user:pa/ss@host. A port before the '/' is not one.
      const size_t colon = s.find(':', authority);
      if (colon != std::string_view::npos && colon < first_at && colon < authority_end) {
        size_t digits_end = colon + 1;
        while (digits_end < first_at && is_digit(s[digits_end])) ++digits_end;
        const bool port = digits_end > colon + 1 && digits_end < s.size() &&
                          (s[digits_end] == '/' || s[digits_end] == '?' || s[digits_end] == '#');
        // As a second pass would see it once the password is a marker: the last '@' before the
        // host's end.
        size_t host_end = first_at;
        while (host_end < stop && s[host_end] != '/' && s[host_end] != '?' && s[host_end] != '#') ++host_end;
        if (!port) userinfo_end = s.rfind('@', host_end - 1);
      }
    }
    if (userinfo_end != std::string_view::npos && userinfo_end > authority)
      mark_userinfo(s, authority, userinfo_end, out);
  }
  if (s.find("://") != std::string_view::npos) return;
  // NAME:PASSWORD@host: a name at a word start, a password without '@', '/' or whitespace.
  for (size_t at = s.find('@'); at != std::string_view::npos; at = s.find('@', at + 1)) {
    if (at + 1 >= s.size() || !is_alnum(s[at + 1])) continue;
    size_t begin = at;
    while (begin > 0 && !is_space(s[begin - 1]) && s[begin - 1] != '@' && s[begin - 1] != '/' &&
           !is_quote(s[begin - 1]) && s[begin - 1] != '=') {
      --begin;
    }
    const size_t colon = s.find(':', begin);
    if (colon == std::string_view::npos || colon >= at || colon == begin) continue;
    bool user_ok = true;
    for (size_t k = begin; k < colon; ++k) user_ok = user_ok && is_name_char(s[k]);
    if (user_ok && colon + 1 < at) out.add(colon + 1, at, "url_password", Source::structure, true);
  }
}

// Spans with markers cut out, sorted and merged: overlapping findings become one redaction.
std::vector<Span> settle(std::vector<Span> spans, const std::vector<std::pair<size_t, size_t>>& markers) {
  for (const auto& [mb, me] : markers) {
    std::vector<Span> cut;
    for (const Span& span : spans) {
      if (span.end <= mb || span.begin >= me) {
        cut.push_back(span);
        continue;
      }
      if (span.begin < mb) cut.push_back({span.begin, mb, span.kind, span.source, span.percent_encoded});
      if (span.end > me) cut.push_back({me, span.end, span.kind, span.source, span.percent_encoded});
    }
    spans = std::move(cut);
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin != b.begin ? a.begin < b.begin : a.end > b.end; });
  std::vector<Span> merged;
  for (const Span& span : spans) {
    if (!merged.empty() && span.begin < merged.back().end) {
      Span& last = merged.back();
      const bool says_more =
          span.source > last.source || (span.source == last.source && span.end - span.begin > last.end - last.begin);
      if (says_more) last.kind = span.kind;
      last.percent_encoded = last.percent_encoded && span.percent_encoded;
      last.end = std::max(last.end, span.end);
      continue;
    }
    merged.push_back(span);
  }
  return merged;
}

}  // namespace

std::string CmdlineRedactor::fingerprint(std::string_view value) const {
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_length = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const unsigned char*>(value.data()),
       value.size(), mac.data(), &mac_length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(kFingerprintHexDigits);
  for (size_t i = 0; out.size() < kFingerprintHexDigits; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 0xf];
  }
  return out;
}

std::string CmdlineRedactor::redact_comm(std::string_view comm) const {
  if (comm.empty()) return {};
  const std::string one[] = {std::string(comm)};
  return std::move(redact(one, comm.size() >= kCommBytes).front());
}

std::string CmdlineRedactor::marker(std::string_view kind, std::string_view value) const {
  std::string out = "<redacted:";
  out += kind;
  out += ':';
  out += fingerprint(value);
  out += '>';
  return out;
}

std::vector<std::string> CmdlineRedactor::redact(std::span<const std::string> argv, bool truncated) const {
  // A marker can change what the rules see around it (it may take a value's '=' or a pair's
  // ',', or the "-----" that closed a PEM label), so a second pass over a result can find more.
  // Passes repeat until one replaces nothing: the result is then a fixed point, and redacting it
  // again gives it back. Each pass that changes something turns text that is no marker into one,
  // so the passes end; most argvs hold no secret and take one pass, argvs with one take two.
  std::vector<std::string> out;
  if (!redact_pass(argv, truncated, out)) return out;
  std::vector<std::string> next;
  for (size_t pass = 1; pass < kMaxRedactionPasses; ++pass) {
    if (!redact_pass(out, truncated, next)) return out;
    out.swap(next);
  }
  // Still changing (only crafted input gets here): what the passes touched is withheld whole, and
  // if even that is no fixed point, every argument is. Either way the cost stays bounded.
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] != argv[i]) out[i] = marker("unsettled", argv[i]);
  }
  if (!redact_pass(out, truncated, next)) return out;
  for (size_t i = 0; i < out.size(); ++i) out[i] = marker("unsettled", argv[i]);
  return out;
}

bool CmdlineRedactor::redact_pass(std::span<const std::string> argv, bool truncated,
                                  std::vector<std::string>& out) const {
  bool replaced = false;
  std::vector<ArgSpans> spans(argv.size());

  std::vector<Word> words;
  words.reserve(argv.size());
  for (size_t i = 0; i < argv.size(); ++i) {
    words.push_back({i, 0, argv[i], truncated && i + 1 == argv.size()});
  }
  apply_command_rules(words, spans);
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    const bool cut = truncated && i + 1 == argv.size();
    if (std::any_of(arg.begin(), arg.end(), is_space)) {
      for (const auto& command : split_commands(arg, i, cut)) {
        if (!command.empty()) apply_command_rules(command, spans);
      }
    }
    ArgSpans& found = spans[i];
    scan_private_keys(arg, cut, found);
    scan_token_formats(arg, cut, found);
    scan_assignments(arg, i > 0 && argv[i - 1] == "-c", found);
    scan_urls(arg, found);
    scan_entropy(arg, found);
  }

  out.clear();
  out.reserve(argv.size());
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (spans[i].spans.empty()) {
      out.push_back(arg);
      continue;
    }
    const auto settled = settle(std::move(spans[i].spans), find_markers(arg));
    replaced = replaced || !settled.empty();
    std::string redacted;
    redacted.reserve(arg.size());
    size_t copied = 0;
    for (const Span& span : settled) {
      redacted.append(arg, copied, span.begin - copied);
      const std::string_view value(arg.data() + span.begin, span.end - span.begin);
      redacted += span.percent_encoded ? marker(span.kind, percent_decode(value)) : marker(span.kind, value);
      copied = span.end;
    }
    redacted.append(arg, copied, std::string::npos);
    out.push_back(std::move(redacted));
  }
  return replaced;
}

}  // namespace nhiguard::identity

// CmdlineRedactor: a process's argv with every secret in it replaced by a keyed marker.
//
// Command lines carry secrets (`docker login -p PW`, `vault login s.X`, `curl -H "Authorization:
// Bearer T"`, `psql postgresql://u:PW@db`). The agent stores and sends argv in events, decisions,
// the outbox and the collector, so every argv is passed through redact() before anything keeps it.
// A secret becomes `<redacted:KIND:FP>`: KIND says what was found (password, token, secret, key,
// auth, session, cookie, bearer, basic, unsettled, authorization, url_password, url_token, vault_token,
// aws_access_key_id, aws_secret_key, github_token, gitlab_token, slack_token, stripe_key,
// google_api_key, google_oauth_token, npm_token, pypi_token, digitalocean_token, jwt, private_key,
// high_entropy); FP is the first 12 hex digits of HMAC-SHA256(host key, value), so one secret seen
// twice (in two processes, or as `--password=PW` and in `mysql://u:PW@h`) has one FP, and its value
// cannot be recovered or checked without the host's key (see redaction_key.h). A URL password is
// fingerprinted percent-decoded, so `p%40ss` and `p@ss` agree. The scheme of an Authorization header
// ("Bearer", "Basic"), a header's name, a flag and a key stay readable.
//
// What is found, in every argument and inside longer ones (`bash -c "..."`, `python3 -c "..."`,
// connection strings): an argument with whitespace is also split into words and those words go
// through the argv rules below as if they were an argv of their own.
//   - Flags whose name says secret (words token, secret, password, passwd, pass, pwd, passphrase,
//     key, apikey, auth, authorization, credential(s), creds, bearer, session, cookie, pat, and
//     compounds such as authToken, keyStorePassword, accessKey): `--flag=VALUE`, `--flag VALUE`,
//     `-flag VALUE`, `-Dprop.password=VALUE`. A name ending in a word that names something else
//     (file, path, dir, stdin, env, type, name, url, mode, ttl, ...: `--password-file F`,
//     `--password-stdin`, `--key-name N`) or starting with `no-` is not a secret flag; `-id` ends
//     only key names (`--key-id`, not `--secret-id`). `--public-key` is not secret.
//   - `key=value` and `key: value` pairs with such a key anywhere in an argument (`env
//     AWS_SECRET_ACCESS_KEY=X cmd`, `--set db.password=X`, `password=X` of vault, `-e
//     POSTGRES_PASSWORD=X`, `?access_token=X&`, `{"password": "X"}`, `pass:X` of openssl,
//     `AccountKey=X;` of a connection string). A whole argument `key=value` redacts to its end;
//     inside a longer text the value ends at whitespace or one of `&;,"'`)}]<>|` unless quoted.
//   - Headers (`-H`/`--header` values, httpie items, `http.extraHeader`): Authorization and
//     Proxy-Authorization (keeping the scheme word), Cookie / Set-Cookie, and any header whose name
//     says secret (X-Api-Key, X-Auth-Token, PRIVATE-TOKEN, X-Vault-Token, X-Amz-Security-Token).
//     `Bearer TOKEN` anywhere in a text.
//   - Per tool: `-p` of mysql/mariadb tools (`-pPW`; a bare `-p` prompts and takes no value),
//     sshpass, mongo tools, and of docker/podman/nerdctl/buildah/skopeo/helm/oras/az when the argv
//     has `login`; `-a` of redis-cli; `-P` of sqlcmd/bcp; `-w` of ldap* tools; the password part of
//     `-u`/`--user`/`-U`/`--proxy-user USER:PW` of curl and `-a`/`--auth` of httpie; `-b` (cookie)
//     of curl; the argument after `--with-token` (gh) unless it is a flag; the first positional
//     after `login` of vault; the value after a secret-named positional following `set`/`config`
//     (`aws configure set aws_secret_access_key X`, `git config --global x.password X`, `npm config
//     set //registry/:_authToken X`). Wrappers (env, sudo, nohup, nice, timeout, ...) are skipped
//     to find the tool.
//   - URL userinfo (`scheme://user:PW@host`): the password; a user alone is redacted when it looks
//     like a token (a known format below, or high entropy with the relaxed rule).
//   - Known token formats, anywhere: AWS key ids (AKIA, ASIA, AGPA, AIDA, AROA, AIPA, ANPA, ANVA,
//     ABIA, ACCA + 16 of [A-Z0-9]), GitHub (ghp_/gho_/ghu_/ghs_/ghr_ + 30+, github_pat_), GitLab
//     (glpat-, gloas-, gldt-, glrt-, glptt-, glsoat-), Slack (xoxa/b/p/r/s/e-, xapp-), Vault (hvs./
//     hvb./hvr. + 20+, legacy s./b. + 24), Stripe (sk_/rk_ live/test, whsec_), Google (AIza + 35,
//     ya29., GOCSPX-), npm_, pypi-AgEI, dop_v1_, JWTs (eyJ..eyJ-style three base64url segments), and
//     PEM private-key blocks (-----BEGIN ... PRIVATE KEY----- through its END line, or to the end of
//     a cut argument). A 40-character high-entropy base64 run is named aws_secret_key.
//   - High entropy: a run of [A-Za-z0-9+/_-] (trailing '=' padding kept with it) that is
//     * at least kMinEntropyLength (20) characters long,
//     * not hexadecimal only and not a UUID: hex digests (md5/sha1/sha256/sha512 of files, git
//       commits, image digests `sha256:...`) are KEPT, for forensics; a hex-only secret is caught
//       only by its flag or key name, a URL or a token format,
//     * not a path: a run that starts with '/' (or follows '~' or '.') is judged per '/' segment,
//     * made of a random-looking mix: upper, lower and digits (letters' upper share within
//       [0.2, 0.8], so CamelCase identifiers are kept), or one case and digits (>= 24 chars, at
//       least 2 of each), or mixed case alone (>= 24 chars, share within [0.3, 0.7]),
//     * with one piece between separators (- _ / +) at least 12 long (16 from 32 characters), so
//       `nginx-deployment-66b6c48dd5-4jw2s` is kept,
//     * and a Shannon entropy of at least kEntropyFactor (0.82) x log2(length) bits per character,
//       capped at 4.3 (0.78 and 4.1 for the one-case mixes). Random base62 strings pass at ~99 %
//       from 20 characters (measured: 1st percentile 3.65 at 20, 4.45 at 40).
//   - An argument cut by the kernel's or /proc's length limit (`truncated`): a token prefix at its
//     very end is redacted however short its rest, and a pending secret flag takes the cut value.
// Markers already in the input are left as they are; text next to a marker is still scanned. A
// marker can make a finding of its own (it may have taken a pair's '=' or a PEM label's close), so
// passes repeat until one replaces nothing: redact is idempotent on its own output, and an argv with
// no secret costs one pass. Input crafted to keep changing for kMaxRedactionPasses passes has the
// arguments the passes touched withheld whole (`<redacted:unsettled:FP>`), or all of them if that
// does not settle either.
//
// The environment is never read by the agent; a value typed on a command line is the only way a
// secret reaches argv, and these rules are what keeps it from being recorded.
//
// Thread-safety: const methods, callable concurrently. Pure: no files, no kernel, no clock.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nhiguard::identity {

inline constexpr size_t kRedactionKeyBytes = 32;
using RedactionKey = std::array<unsigned char, kRedactionKeyBytes>;

inline constexpr size_t kMinEntropyLength = 20;
inline constexpr double kEntropyFactor = 0.82;
inline constexpr size_t kFingerprintHexDigits = 12;
inline constexpr size_t kMaxRedactionPasses = 12;
inline constexpr size_t kCommBytes = 15;  // TASK_COMM_LEN without its NUL

class CmdlineRedactor {
 public:
  explicit CmdlineRedactor(const RedactionKey& key) : key_(key) {}

  // argv with every secret replaced by its marker; as many arguments as it was given. `truncated`:
  // the last argument was cut by a length limit (its end is not the argument's end).
  std::vector<std::string> redact(std::span<const std::string> argv, bool truncated = false) const;

  // A task's comm with a secret in it redacted. A process names itself (prctl PR_SET_NAME, the
  // name of the file it runs), and the kernel cuts the name at kCommBytes, so a comm of that length
  // is judged as a cut argument: a token prefix at its end is redacted however short its rest.
  std::string redact_comm(std::string_view comm) const;

  // The keyed fingerprint of one value: the first kFingerprintHexDigits hex digits of
  // HMAC-SHA256(key, value), lowercase.
  std::string fingerprint(std::string_view value) const;
  // `<redacted:KIND:FP>` for one value.
  std::string marker(std::string_view kind, std::string_view value) const;

 private:
  // One pass of every rule over argv into out; whether it replaced anything.
  bool redact_pass(std::span<const std::string> argv, bool truncated, std::vector<std::string>& out) const;

  RedactionKey key_;
};

}  // namespace nhiguard::identity

// CmdlineRedactor: a table of real command lines with their exact redacted form, high-entropy rows,
// rows that must come out unchanged (paths, UUIDs, digests, ordinary flags), cut argvs, the
// fingerprint against a known answer, and idempotence. The key is fixed (bytes 0..31), so every
// fingerprint is stable; in the table `{{KIND|VALUE}}` stands for `<redacted:KIND:FP(VALUE)>`.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "identity/cmdline_redactor.h"

using nhiguard::identity::CmdlineRedactor;
using nhiguard::identity::RedactionKey;

namespace {

RedactionKey fixed_key() {
  RedactionKey key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<unsigned char>(i);
  return key;
}

const CmdlineRedactor& redactor() {
  static const CmdlineRedactor r(fixed_key());
  return r;
}

// Expands {{KIND|VALUE}} into the marker the fixed key gives VALUE.
std::string expand(const std::string& templ) {
  std::string out;
  size_t at = 0;
  while (true) {
    const size_t open = templ.find("{{", at);
    if (open == std::string::npos) break;
    const size_t bar = templ.find('|', open);
    const size_t close = templ.find("}}", bar);
    out += templ.substr(at, open - at);
    out += redactor().marker(templ.substr(open + 2, bar - open - 2), templ.substr(bar + 1, close - bar - 1));
    at = close + 2;
  }
  return out + templ.substr(at);
}

using Argv = std::vector<std::string>;
struct Row {
  Argv argv;
  Argv expected;  // templates
};

// Fake secrets in the real formats.
const std::string kAwsKeyId = "AKIAIOSFODNN7EXAMPLE";
const std::string kAwsSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const std::string kGithub = "ghp_R3nd0mT0k3nV4lu3F0rT3st1ngXyZ1234567";
const std::string kGitlab = "glpat-xY7kQ2mN9pL4vR8tZ3wB";
const std::string kSlack = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
const std::string kStripe = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
const std::string kGoogle = "AIzaSyA1bC2dE3fG4hI5jK6lM7nO8pQ9rS0tU1v";
const std::string kVault = "hvs.CAESIJ3kZ4f8rY2nQ7vW1xTq9LmB5cH6dE0aSgPuKoNzXyRt";
const std::string kVaultLegacy = "s.6H3kYq9Lm2Xv8Rt4Zp7Wn1Bc";
const std::string kNpm = "npm_Ab3Cd5Ef7Gh9Ij1Kl3Mn5Op7Qr9St1Uv3Wx5";
const std::string kJwt =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
const std::string kAzureKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const std::string kRandom = "9fK2xQ7mLp4RvT8wZ3nB6yHc1JdS5gUe";
const std::string kPem =
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----";

std::string m(const std::string& kind, const std::string& value) {
  return "{{" + kind + "|" + value + "}}";
}

const std::vector<Row>& secret_rows() {
  static const std::vector<Row> rows = {
      // --- aws
      {{"aws", "configure", "set", "aws_secret_access_key", kAwsSecret},
       {"aws", "configure", "set", "aws_secret_access_key", m("secret", kAwsSecret)}},
      {{"aws", "configure", "set", "aws_access_key_id", kAwsKeyId},
       {"aws", "configure", "set", "aws_access_key_id", m("aws_access_key_id", kAwsKeyId)}},
      {{"aws", "configure", "set", "aws_session_token", "IQoJb3JpZ2luX2VjEXAMPLE"},
       {"aws", "configure", "set", "aws_session_token", m("token", "IQoJb3JpZ2luX2VjEXAMPLE")}},
      {{"env", "AWS_ACCESS_KEY_ID=" + kAwsKeyId, "AWS_SECRET_ACCESS_KEY=" + kAwsSecret, "aws", "sts",
        "get-caller-identity"},
       {"env", "AWS_ACCESS_KEY_ID=" + m("aws_access_key_id", kAwsKeyId),
        "AWS_SECRET_ACCESS_KEY=" + m("secret", kAwsSecret), "aws", "sts", "get-caller-identity"}},
      {{"python3", "-c", "open('/home/svc/.aws/credentials').read()", "--aws-secret-access-key=SECRETVALUE1", "-H",
        "Authorization: Bearer TOKENVALUE2", "https://svc:PASSWORD3@host.example.com/"},
       {"python3", "-c", "open('/home/svc/.aws/credentials').read()",
        "--aws-secret-access-key=" + m("secret", "SECRETVALUE1"), "-H",
        "Authorization: Bearer " + m("bearer", "TOKENVALUE2"),
        "https://svc:" + m("url_password", "PASSWORD3") + "@host.example.com/"}},
      // --- gcloud / az
      {{"gcloud", "auth", "activate-service-account", "ci@proj.iam.gserviceaccount.com", "--key-file=/etc/gcp/sa.json"},
       {"gcloud", "auth", "activate-service-account", "ci@proj.iam.gserviceaccount.com",
        "--key-file=/etc/gcp/sa.json"}},
      {{"gcloud", "compute", "instances", "list", "--access-token-file=/run/token", "--project", "prod-123"},
       {"gcloud", "compute", "instances", "list", "--access-token-file=/run/token", "--project", "prod-123"}},
      {{"curl", "https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key=" + kGoogle},
       {"curl",
        "https://maps.googleapis.com/maps/api/geocode/json?address=Berlin&key=" + m("google_api_key", kGoogle)}},
      {{"az", "login", "--service-principal", "-u", "0f8fad5b-d9cb-469f-a165-70867728950e", "-p", "Xy7~Q2m.N9pL4vR8",
        "--tenant", "72f988bf-86f1-41af-91ab-2d7cd011db47"},
       {"az", "login", "--service-principal", "-u", "0f8fad5b-d9cb-469f-a165-70867728950e", "-p",
        m("password", "Xy7~Q2m.N9pL4vR8"), "--tenant", "72f988bf-86f1-41af-91ab-2d7cd011db47"}},
      {{"az", "storage", "blob", "upload", "--account-name", "acct", "--account-key", kAzureKey, "--file", "f.tar"},
       {"az", "storage", "blob", "upload", "--account-name", "acct", "--account-key", m("key", kAzureKey), "--file",
        "f.tar"}},
      {{"az", "storage", "container", "list", "--connection-string",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + kAzureKey + ";EndpointSuffix=core.windows.net"},
       {"az", "storage", "container", "list", "--connection-string",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + m("key", kAzureKey) +
            ";EndpointSuffix=core.windows.net"}},
      // --- vault
      {{"vault", "login", kVaultLegacy}, {"vault", "login", m("vault_token", kVaultLegacy)}},
      {{"vault", "login", "-address=https://vault:8200", "plainvaulttoken"},
       {"vault", "login", "-address=https://vault:8200", m("vault_token", "plainvaulttoken")}},
      {{"vault", "login", "-method=userpass", "username=alice", "password=hunter2"},
       {"vault", "login", "-method=userpass", "username=alice", "password=" + m("password", "hunter2")}},
      {{"vault", "kv", "put", "secret/db", "password=Sup3r S3cret!"},
       {"vault", "kv", "put", "secret/db", "password=" + m("password", "Sup3r S3cret!")}},
      {{"env", "VAULT_TOKEN=" + kVault, "vault", "read", "secret/app"},
       {"env", "VAULT_TOKEN=" + m("vault_token", kVault), "vault", "read", "secret/app"}},
      {{"vault", "write", "auth/approle/login", "role_id=db02de05-fa39-4855-059b-67221c5c2f63",
        "secret_id=6a174c20-f6de-a53c-74d2-6018fcceff64"},
       {"vault", "write", "auth/approle/login", "role_id=db02de05-fa39-4855-059b-67221c5c2f63",
        "secret_id=" + m("secret", "6a174c20-f6de-a53c-74d2-6018fcceff64")}},
      // --- docker / podman / helm / kubectl
      {{"docker", "login", "-u", "ci", "-p", "dckr_pat_2b3e36beeb386dfdaacb9b46004", "registry.example.com"},
       {"docker", "login", "-u", "ci", "-p", m("password", "dckr_pat_2b3e36beeb386dfdaacb9b46004"),
        "registry.example.com"}},
      {{"docker", "login", "--username", "ci", "--password", "hunter2", "registry.example.com"},
       {"docker", "login", "--username", "ci", "--password", m("password", "hunter2"), "registry.example.com"}},
      {{"podman", "login", "-u", "ci", "-phunter2", "quay.io"},
       {"podman", "login", "-u", "ci", "-p" + m("password", "hunter2"), "quay.io"}},
      {{"docker", "run", "-p", "8080:80", "-e", "POSTGRES_PASSWORD=hunter2", "postgres:16"},
       {"docker", "run", "-p", "8080:80", "-e", "POSTGRES_PASSWORD=" + m("password", "hunter2"), "postgres:16"}},
      {{"docker", "exec", "-it", "db", "mysql", "-uroot", "-phunter2", "app"},
       {"docker", "exec", "-it", "db", "mysql", "-uroot", "-p" + m("password", "hunter2"), "app"}},
      {{"kubectl", "--token=" + kJwt, "get", "pods"}, {"kubectl", "--token=" + m("jwt", kJwt), "get", "pods"}},
      {{"kubectl", "--token", "s3cr3t-t0ken", "-n", "prod", "get", "secrets"},
       {"kubectl", "--token", m("token", "s3cr3t-t0ken"), "-n", "prod", "get", "secrets"}},
      {{"kubectl", "create", "secret", "generic", "db", "--from-literal=password=hunter2", "--from-literal=user=app"},
       {"kubectl", "create", "secret", "generic", "db", "--from-literal=password=" + m("password", "hunter2"),
        "--from-literal=user=app"}},
      {{"kubectl", "config", "set-credentials", "ci", "--token=abc.def.ghi"},
       {"kubectl", "config", "set-credentials", "ci", "--token=" + m("token", "abc.def.ghi")}},
      {{"helm", "install", "app", "./chart", "--set", "db.password=hunter2,db.user=app"},
       {"helm", "install", "app", "./chart", "--set", "db.password=" + m("password", "hunter2") + ",db.user=app"}},
      {{"helm", "repo", "add", "private", "https://charts.example.com", "--username", "ci", "--password", "hunter2"},
       {"helm", "repo", "add", "private", "https://charts.example.com", "--username", "ci", "--password",
        m("password", "hunter2")}},
      {{"helm", "registry", "login", "registry.example.com", "-u", "ci", "-p", "hunter2"},
       {"helm", "registry", "login", "registry.example.com", "-u", "ci", "-p", m("password", "hunter2")}},
      // --- curl / wget / httpie
      {{"curl", "-sS", "-H", "Authorization: Bearer " + kJwt, "https://api.example.com/v1/me"},
       {"curl", "-sS", "-H", "Authorization: Bearer " + m("jwt", kJwt), "https://api.example.com/v1/me"}},
      {{"curl", "-H", "Authorization: Basic YWxpY2U6aHVudGVyMg==", "https://api.example.com"},
       {"curl", "-H", "Authorization: Basic " + m("basic", "YWxpY2U6aHVudGVyMg=="), "https://api.example.com"}},
      {{"curl", "--header", "X-Api-Key: 3f9a8b7c6d5e4f3a2b1c", "https://api.example.com"},
       {"curl", "--header", "X-Api-Key: " + m("key", "3f9a8b7c6d5e4f3a2b1c"), "https://api.example.com"}},
      {{"curl", "-H", "PRIVATE-TOKEN: " + kGitlab, "https://gitlab.example.com/api/v4/projects"},
       {"curl", "-H", "PRIVATE-TOKEN: " + m("gitlab_token", kGitlab), "https://gitlab.example.com/api/v4/projects"}},
      {{"curl", "-H", "Cookie: session=abc123; csrftoken=def456", "https://app.example.com"},
       {"curl", "-H", "Cookie: " + m("cookie", "session=abc123; csrftoken=def456"), "https://app.example.com"}},
      {{"curl", "-b", "session=abc123", "https://app.example.com"},
       {"curl", "-b", m("cookie", "session=abc123"), "https://app.example.com"}},
      {{"curl", "-u", "admin:hunter2", "https://api.example.com"},
       {"curl", "-u", "admin:" + m("password", "hunter2"), "https://api.example.com"}},
      {{"curl", "-d", "client_id=app&client_secret=Zq8tPl2Wx&grant_type=client_credentials",
        "https://login.example.com/token"},
       {"curl", "-d", "client_id=app&client_secret=" + m("secret", "Zq8tPl2Wx") + "&grant_type=client_credentials",
        "https://login.example.com/token"}},
      {{"curl", "https://api.example.com/v1/items?access_token=abc123def&limit=10"},
       {"curl", "https://api.example.com/v1/items?access_token=" + m("token", "abc123def") + "&limit=10"}},
      {{"wget", "--header=Authorization: token " + kGithub, "https://api.github.com/user"},
       {"wget", "--header=Authorization: token " + m("github_token", kGithub), "https://api.github.com/user"}},
      {{"wget", "--user=ci", "--password=hunter2", "https://files.example.com/a.tgz"},
       {"wget", "--user=ci", "--password=" + m("password", "hunter2"), "https://files.example.com/a.tgz"}},
      {{"http", "-a", "alice:hunter2", "GET", "https://api.example.com"},
       {"http", "-a", "alice:" + m("password", "hunter2"), "GET", "https://api.example.com"}},
      // --- databases
      {{"mysql", "-h", "db", "-u", "root", "-phunter2", "app"},
       {"mysql", "-h", "db", "-u", "root", "-p" + m("password", "hunter2"), "app"}},
      {{"mysqldump", "--password=hunter2", "--single-transaction", "app"},
       {"mysqldump", "--password=" + m("password", "hunter2"), "--single-transaction", "app"}},
      {{"psql", "postgresql://app:hunter2@db.example.com:5432/app"},
       {"psql", "postgresql://app:" + m("url_password", "hunter2") + "@db.example.com:5432/app"}},
      {{"psql", "postgres://app:p%40ss@db/app"}, {"psql", "postgres://app:" + m("url_password", "p@ss") + "@db/app"}},
      {{"psql", "host=db user=app password=hunter2 dbname=app"},
       {"psql", "host=db user=app password=" + m("password", "hunter2") + " dbname=app"}},
      {{"redis-cli", "-h", "cache", "-a", "hunter2", "ping"},
       {"redis-cli", "-h", "cache", "-a", m("password", "hunter2"), "ping"}},
      {{"redis-cli", "-u", "redis://:hunter2@cache:6379/0"},
       {"redis-cli", "-u", "redis://:" + m("url_password", "hunter2") + "@cache:6379/0"}},
      {{"mongosh", "mongodb+srv://app:hunter2@cluster0.example.net/app"},
       {"mongosh", "mongodb+srv://app:" + m("url_password", "hunter2") + "@cluster0.example.net/app"}},
      {{"mongodump", "-u", "app", "-p", "hunter2", "--db", "app"},
       {"mongodump", "-u", "app", "-p", m("password", "hunter2"), "--db", "app"}},
      {{"migrate", "-database", "mysql://app:hunter2@tcp(db:3306)/app", "up"},
       {"migrate", "-database", "mysql://app:" + m("url_password", "hunter2") + "@tcp(db:3306)/app", "up"}},
      {{"sqlcmd", "-S", "db", "-U", "sa", "-P", "hunter2"},
       {"sqlcmd", "-S", "db", "-U", "sa", "-P", m("password", "hunter2")}},
      {{"ldapsearch", "-x", "-D", "cn=admin,dc=example,dc=org", "-w", "hunter2", "-b", "dc=example,dc=org"},
       {"ldapsearch", "-x", "-D", "cn=admin,dc=example,dc=org", "-w", m("password", "hunter2"), "-b",
        "dc=example,dc=org"}},
      // --- git / gh / npm
      {{"git", "clone", "https://x-access-token:" + kGithub + "@github.com/org/repo.git"},
       {"git", "clone", "https://x-access-token:" + m("github_token", kGithub) + "@github.com/org/repo.git"}},
      {{"git", "clone", "https://" + kGithub + "@github.com/org/repo.git"},
       {"git", "clone", "https://" + m("github_token", kGithub) + "@github.com/org/repo.git"}},
      {{"git", "clone", "https://oauth2:" + kGitlab + "@gitlab.com/group/project.git"},
       {"git", "clone", "https://oauth2:" + m("gitlab_token", kGitlab) + "@gitlab.com/group/project.git"}},
      {{"git", "-c", "http.extraHeader=Authorization: Basic eDphYmM=", "clone", "https://git.example.com/r.git"},
       {"git", "-c", "http.extraHeader=Authorization: Basic " + m("basic", "eDphYmM="), "clone",
        "https://git.example.com/r.git"}},
      {{"git", "config", "--global", "user.password", "hunter2"},
       {"git", "config", "--global", "user.password", m("password", "hunter2")}},
      {{"gh", "auth", "login", "--with-token", "tok3n-value"},
       {"gh", "auth", "login", "--with-token", m("token", "tok3n-value")}},
      {{"gh", "auth", "login", "--with-token", "--hostname", "github.example.com"},
       {"gh", "auth", "login", "--with-token", "--hostname", "github.example.com"}},
      {{"npm", "config", "set", "//registry.npmjs.org/:_authToken", kNpm},
       {"npm", "config", "set", "//registry.npmjs.org/:_authToken", m("npm_token", kNpm)}},
      // --- other tools, wrappers and code
      {{"sshpass", "-p", "hunter2", "ssh", "deploy@bastion.example.com"},
       {"sshpass", "-p", m("password", "hunter2"), "ssh", "deploy@bastion.example.com"}},
      {{"openssl", "pkcs12", "-export", "-in", "c.pem", "-inkey", "k.pem", "-passout", "pass:hunter2", "-out", "c.p12"},
       {"openssl", "pkcs12", "-export", "-in", "c.pem", "-inkey", "k.pem", "-passout",
        "pass:" + m("password", "hunter2"), "-out", "c.p12"}},
      {{"java", "-Djavax.net.ssl.keyStorePassword=changeit", "-Djavax.net.ssl.keyStore=/etc/app/ks.jks", "-jar",
        "app.jar"},
       {"java", "-Djavax.net.ssl.keyStorePassword=" + m("password", "changeit"),
        "-Djavax.net.ssl.keyStore=/etc/app/ks.jks", "-jar", "app.jar"}},
      {{"terraform", "apply", "-var", "db_password=hunter2", "-auto-approve"},
       {"terraform", "apply", "-var", "db_password=" + m("password", "hunter2"), "-auto-approve"}},
      {{"ansible-playbook", "site.yml", "-e", "ansible_become_pass=hunter2"},
       {"ansible-playbook", "site.yml", "-e", "ansible_become_pass=" + m("password", "hunter2")}},
      {{"sudo", "-u", "app", "env", "DB_PASSWORD=hunter2", "/opt/app/bin/migrate"},
       {"sudo", "-u", "app", "env", "DB_PASSWORD=" + m("password", "hunter2"), "/opt/app/bin/migrate"}},
      {{"bash", "-c", "PGPASSWORD=hunter2 psql -h db app"},
       {"bash", "-c", "PGPASSWORD=" + m("password", "hunter2") + " psql -h db app"}},
      {{"sh", "-c", "mysql -uroot -phunter2 app < dump.sql"},
       {"sh", "-c", "mysql -uroot -p" + m("password", "hunter2") + " app < dump.sql"}},
      {{"bash", "-c", "curl -s -H 'Authorization: Bearer abc.def-123XYZ' https://api.example.com | jq ."},
       {"bash", "-c",
        "curl -s -H 'Authorization: Bearer " + m("bearer", "abc.def-123XYZ") + "' https://api.example.com | jq ."}},
      {{"python3", "-c", "import requests; requests.get(u, headers={'Authorization': 'Bearer abc.def-123XYZ'})"},
       {"python3", "-c",
        "import requests; requests.get(u, headers={'Authorization': 'Bearer " + m("bearer", "abc.def-123XYZ") + "'})"}},
      {{"python3", "-c", "import subprocess; subprocess.run(['vault', 'login', 'plainvaulttoken'])"},
       {"python3", "-c",
        "import subprocess; subprocess.run(['vault', 'login', '" + m("vault_token", "plainvaulttoken") + "'])"}},
      {{"python3", "-c", "boto3.client('s3', aws_secret_access_key=\"" + kAwsSecret + "\")"},
       {"python3", "-c", "boto3.client('s3', aws_secret_access_key=\"" + m("secret", kAwsSecret) + "\")"}},
      {{"stripe", "listen", "--api-key", kStripe}, {"stripe", "listen", "--api-key", m("stripe_key", kStripe)}},
      {{"slack-notify", "--channel", "ops", kSlack}, {"slack-notify", "--channel", "ops", m("slack_token", kSlack)}},
      {{"/usr/bin/printf", "%s", kPem}, {"/usr/bin/printf", "%s", m("private_key", kPem)}},
      {{"deploy", "--notify", "{\"password\": \"hunter2\", \"user\": \"ci\"}"},
       {"deploy", "--notify", "{\"password\": \"" + m("password", "hunter2") + "\", \"user\": \"ci\"}"}},
      // --- high entropy, no name and no known format
      {{"./deploy.sh", kRandom}, {"./deploy.sh", m("high_entropy", kRandom)}},
      {{"myapp", "--seed", "Zx8Qv2Lm7Rt4Np9Kw3Bh6Yc1"},
       {"myapp", "--seed", m("high_entropy", "Zx8Qv2Lm7Rt4Np9Kw3Bh6Yc1")}},
      {{"s3-upload", kAwsSecret}, {"s3-upload", m("aws_secret_key", kAwsSecret)}},
      {{"backup", "--target", "/tmp/" + kRandom + "/out"},
       {"backup", "--target", "/tmp/" + m("high_entropy", kRandom) + "/out"}},
      {{"notify", "k3j5h2l4m6n8b9v7c1x2z0q8w7e6"}, {"notify", m("high_entropy", "k3j5h2l4m6n8b9v7c1x2z0q8w7e6")}},
  };
  return rows;
}

// Ordinary command lines: nothing in them is a secret, and nothing may be redacted.
const std::vector<Argv>& unchanged_rows() {
  static const std::vector<Argv> rows = {
      {"cat", "/home/svc/.aws/credentials"},
      {"ls", "-la", "/usr/lib/x86_64-linux-gnu/libssl.so.3"},
      {"systemctl", "restart", "payments.service"},
      {"java", "-XX:+UseG1GC", "-Xmx2048m", "-cp", "/opt/app/lib/app.jar",
       "com.example.payments.PaymentServiceApplication"},
      {"kubectl", "get", "pods", "-n", "kube-system", "-o", "wide"},
      {"kubectl", "logs", "nginx-deployment-66b6c48dd5-4jw2s", "-c", "nginx"},
      {"kubectl", "get", "pod", "kube-system-coredns-5d78c9869d-abcde"},
      {"az", "vm", "show", "--subscription", "0f8fad5b-d9cb-469f-a165-70867728950e", "--name", "vm1"},
      {"python3", "-m", "pip", "install", "--upgrade", "requests==2.31.0"},
      {"ssh", "-p", "2222", "-i", "/home/deploy/.ssh/id_ed25519", "deploy@bastion.example.com"},
      {"psql", "-h", "db", "-p", "5432", "-U", "app", "app"},
      {"mysql", "-h", "db", "-u", "root", "-p", "app"},
      {"docker", "login", "--password-stdin", "-u", "ci", "registry.example.com"},
      {"docker", "build", "--build-arg", "VERSION=1.2.3", "-t", "registry.example.com/team/app:1.2.3", "."},
      {"node", "--max-old-space-size=4096", "server.js"},
      {"llm", "--max-tokens", "512", "--tokenizer", "bert-base-uncased"},
      {"curl", "--cookie-jar", "/tmp/jar", "-o", "/dev/null", "https://example.com/index.html"},
      {"tar", "-czf", "backup-2026-12-03.tar.gz", "/var/lib/app"},
      {"git", "log", "--author=alice", "--since=2.weeks"},
      {"aws", "ec2", "run-instances", "--key-name", "prod-keypair", "--image-id", "ami-0abcdef1234567890"},
      {"aws", "kms", "decrypt", "--key-id", "1234abcd-12ab-34cd-56ef-1234567890ab"},
      {"aws", "s3", "ls", "--profile", "prod", "s3://my-bucket/path/to/object.json"},
      {"gcloud", "container", "clusters", "get-credentials", "prod", "--zone", "europe-west1-b"},
      {"gcloud", "config", "set", "auth/access_token_file", "/run/token"},
      {"ssh-keygen", "-t", "ed25519", "-f", "/tmp/k", "-N", ""},
      {"openssl", "x509", "-in", "cert.pem", "-noout", "-text"},
      {"gpg", "--recv-keys", "0x8B48AD6246925553"},
      // sha256 of a file, a git commit and an image digest: hex digests are kept (see the header).
      {"sha256sum", "-c", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"git", "checkout", "3f786850e387550fdab836ed7e6dc881de23001b"},
      {"docker", "pull", "nginx@sha256:0d17b565c37bcbd895e9d92315a05c1c3c9a29f762b011a10c54a66cd53c9b31"},
      {"/usr/lib/jvm/java-17-openjdk-amd64/bin/java", "-Dspring.profiles.active=production", "-jar", "/srv/app.jar"},
      {"/usr/bin/python3", "/usr/lib/python3/dist-packages/supervisor/supervisord.py", "-c", "/etc/supervisord.conf"},
      {"nginx", "-g", "daemon off;"},
      {"bash", "-c", "cd /srv/app && ./gradlew build --no-daemon"},
      {"git", "config", "--global", "credential.helper", "store"},
      {"ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "git@github.com"},
      {"env", "SSH_AUTH_SOCK=/run/user/1000/ssh-agent.socket", "git", "push"},
      {"vault", "login", "-method=github"},
      {"curl", "-u", "alice", "https://api.example.com"},
      {"rsync", "-avz", "/srv/data/", "backup@nas.example.com:/volume1/backups/"},
      {"MyVeryLongJavaClassNameFactoryBean", "com.example.Log4jConfigurationFactoryBean2"},
  };
  return rows;
}

std::string show(const Argv& argv) {
  std::string out;
  for (const auto& a : argv) out += "[" + a + "] ";
  return out;
}

}  // namespace

TEST(CmdlineRedactor, FingerprintIsHmacSha256TruncatedTo12Hex) {
  // Known answer: HMAC-SHA256(key = bytes 0..31, "hunter2") starts 8629d712da36.
  EXPECT_EQ(redactor().fingerprint("hunter2"), "8629d712da36");
  EXPECT_EQ(redactor().fingerprint(""), "d38b42096d80");
  EXPECT_EQ(redactor().marker("password", "hunter2"), "<redacted:password:8629d712da36>");
  RedactionKey other = fixed_key();
  other[0] ^= 1;
  EXPECT_NE(CmdlineRedactor(other).fingerprint("hunter2"), "8629d712da36") << "the fingerprint depends on the key";
}

TEST(CmdlineRedactor, LiteralMarkersInOneRow) {
  const Argv in = {"mysql", "-uroot", "-phunter2", "app"};
  EXPECT_EQ(redactor().redact(in), (Argv{"mysql", "-uroot", "-p<redacted:password:8629d712da36>", "app"}));
}

TEST(CmdlineRedactor, TableOfSecretsHasItsExactRedactedForm) {
  ASSERT_GE(secret_rows().size(), 40u);
  for (const Row& row : secret_rows()) {
    Argv expected;
    for (const auto& t : row.expected) expected.push_back(expand(t));
    EXPECT_EQ(redactor().redact(row.argv), expected) << "input: " << show(row.argv);
  }
}

TEST(CmdlineRedactor, OrdinaryCommandLinesAreUnchanged) {
  for (const Argv& argv : unchanged_rows()) EXPECT_EQ(redactor().redact(argv), argv) << "input: " << show(argv);
}

TEST(CmdlineRedactor, NoSecretValueSurvivesInTheTable) {
  for (const Row& row : secret_rows()) {
    std::string joined;
    for (const auto& a : redactor().redact(row.argv)) joined += a + '\n';
    for (const std::string& secret : {kAwsSecret, kAwsKeyId, kGithub, kGitlab, kJwt, kVault, kVaultLegacy, kNpm,
                                      kStripe, kSlack, kGoogle, kAzureKey, kRandom, std::string("hunter2")}) {
      EXPECT_EQ(joined.find(secret), std::string::npos) << secret << " in " << joined;
    }
  }
}

TEST(CmdlineRedactor, OneSecretTwiceHasOneFingerprint) {
  const auto a = redactor().redact(Argv{"mysql", "-phunter2"});
  const auto b = redactor().redact(Argv{"psql", "postgresql://app:hunter2@db/app"});
  const std::string fp = redactor().fingerprint("hunter2");
  EXPECT_NE(a[1].find(fp), std::string::npos);
  EXPECT_NE(b[1].find(fp), std::string::npos);
}

TEST(CmdlineRedactor, IsIdempotent) {
  for (const Row& row : secret_rows()) {
    const Argv once = redactor().redact(row.argv);
    EXPECT_EQ(redactor().redact(once), once) << "input: " << show(row.argv);
  }
}

// Inputs where a marker changes what the rules see around it, so one pass's output held a finding
// for the next (found by fuzz_cmdline_redactor; their raw bytes are in its corpus as regression-*).
TEST(CmdlineRedactor, IsIdempotentWhereAMarkerChangesWhatSurroundsIt) {
  const std::vector<std::pair<Argv, bool>> inputs = {
      // The "-----" closing a PEM label was inside a value that became a marker.
      {{"printf", "-----BEGIN EC POSTGRES_PASSWORD=hunter2 PRY-----/\nMHcCAQEE"}, true},
      // An '=' inside a Bearer value: the word read as a flag once the marker took it.
      {{"curl", "-x).read: Bearer TOKENVALess-key=SECRETVALUE1", "-H", "X"}, false},
      // A second URL whose host was a high-entropy run: the marker's ':' read as userinfo.
      {{"psql", "postgresql://app:hun@db.example.cftp://hoeyJhbGciOiJIUzI1NiIsInR5cCIst:42/@scope/x"}, false},
      // vault's positional with an '=' inside a key: value (the marker took the '=').
      {{"vault", "login", "s.6yyyyyyyyyyyyCCESS_KEY:ID=AKI--tIAIOSFOD", "vault", "login", "s.6yyy"}, false},
      // A scheme after a dash: the marker made the run before "://" a scheme.
      {{"x", "-Zx8Qv2Lm7Rt4Np9Kw3Bh6Yc1-aws-cookie-access-keps://u:p@n"}, false},
      // A high-entropy name took the '=' of a helm pair as base64 padding, so the ',' no longer
      // started a pair and the password's value ran on.
      {{"tool",
        "--passwordinput: https://api.example.com/e.d:x:01234,db.c-pglpat-xY7kQ2mN9pL4vR8tZ3wBassout6s3-upload7=app"},
       false},
  };
  for (const auto& [argv, cut] : inputs) {
    const Argv once = redactor().redact(argv, cut);
    EXPECT_EQ(redactor().redact(once, cut), once) << "input: " << show(argv);
    EXPECT_NE(once, argv) << "each holds a secret: " << show(argv);
  }
}

TEST(CmdlineRedactor, MarkersInTheInputDoNotShieldTextBesideThem) {
  const Argv in = {"tool", "--password=<redacted:password:0123456789ab>hunter2"};
  EXPECT_EQ(redactor().redact(in),
            (Argv{"tool", "--password=<redacted:password:0123456789ab>" + expand(m("password", "hunter2"))}));
}

TEST(CmdlineRedactor, CutArgvRedactsATokenPrefixAtItsEnd) {
  EXPECT_EQ(redactor().redact(Argv{"deploy", "--notify", "ghp_R3nd"}, true),
            (Argv{"deploy", "--notify", expand(m("github_token", "ghp_R3nd"))}));
  EXPECT_EQ(redactor().redact(Argv{"deploy", "--notify", "ghp_R3nd"}, false), (Argv{"deploy", "--notify", "ghp_R3nd"}))
      << "uncut, a short ghp_ word is no token";
  EXPECT_EQ(redactor().redact(Argv{"kubectl", "--token=eyJhbGciOiJIUzI1NiIsInR5cCI"}, true),
            (Argv{"kubectl", "--token=" + expand(m("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI"))}));
  EXPECT_EQ(redactor().redact(Argv{"x", "--password"}, true), (Argv{"x", "--password"})) << "the value was cut off";
  EXPECT_EQ(redactor().redact(Argv{"x", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow"}, true),
            (Argv{"x", expand(m("private_key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow"))}));
}

// A process names itself (prctl PR_SET_NAME, or the file it runs is named so); the kernel keeps 15
// bytes of it. A token's prefix there is redacted as at the end of a cut argument; ordinary task
// names are kept as they are.
TEST(CmdlineRedactor, CommIsRedactedAsACutName) {
  EXPECT_EQ(redactor().redact_comm("ghp_R3nd0mT0k3n"), expand(m("github_token", "ghp_R3nd0mT0k3n")));
  EXPECT_EQ(redactor().redact_comm("AKIAIOSFODNN7EX"), expand(m("aws_access_key_id", "AKIAIOSFODNN7EX")));
  EXPECT_EQ(redactor().redact_comm("eyJhbGciOiJIUzI"), expand(m("jwt", "eyJhbGciOiJIUzI")));
  for (const std::string name :
       {"python3", "systemd-journal", "kworker/u8:2", "cat", "nhiguard-agent", "sshd", "gdbus", "ghp_shortname", ""}) {
    EXPECT_EQ(redactor().redact_comm(name), name) << name;
  }
  const std::string once = redactor().redact_comm("ghp_R3nd0mT0k3n");
  EXPECT_EQ(redactor().redact_comm(once), once);
}

TEST(CmdlineRedactor, EmptyAndOddInputs) {
  EXPECT_TRUE(redactor().redact(Argv{}).empty());
  EXPECT_EQ(redactor().redact(Argv{""}), (Argv{""}));
  EXPECT_EQ(redactor().redact(Argv{"--password"}), (Argv{"--password"}));
  EXPECT_EQ(redactor().redact(Argv{"a=", "password=", ":", "://", "@", "-p"}),
            (Argv{"a=", "password=", ":", "://", "@", "-p"}));
  const std::string binary("pass\0word=\xff\xfe", 12);
  EXPECT_EQ(redactor().redact(Argv{binary}).size(), 1u);
}

// Unit tests of the downloader's pure logic: cache paths and symlink targets, etag handling,
// glob filtering and the choice of files, aliases and repo ids, token lookup order, URL and
// Link-header helpers, and resolve_model_path against a cache laid out in a temp folder.
// The network side is tested end to end in tests/py/test_download.py.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "hub/exit_codes.h"
#include "hub/http.h"
#include "hub/hub_api.h"
#include "hub/hub_cache.h"
#include "hub/model_alias.h"
#include "hub/sha256.h"

namespace fs = std::filesystem;
using namespace billion::hub;

namespace {

// Sets environment variables for one test and restores them afterwards.
class EnvGuard {
 public:
  void set(const char* name, const std::string& value) {
    remember(name);
    ::setenv(name, value.c_str(), 1);
  }
  void unset(const char* name) {
    remember(name);
    ::unsetenv(name);
  }
  ~EnvGuard() {
    for (auto& [name, value] : saved_) {
      if (value) {
        ::setenv(name.c_str(), value->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }

 private:
  void remember(const char* name) {
    if (saved_.count(name)) return;
    const char* v = std::getenv(name);
    saved_[name] = v ? std::optional<std::string>(v) : std::nullopt;
  }
  std::map<std::string, std::optional<std::string>> saved_;
};

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("billion_test_hub_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

RepoFileEntry entry(const std::string& path, uint64_t size = 1) { return RepoFileEntry{path, size, "oid", ""}; }

std::vector<std::string> paths(const std::vector<RepoFileEntry>& files) {
  std::vector<std::string> out;
  for (const auto& f : files) out.push_back(f.path);
  return out;
}

}  // namespace

TEST(HubCache, RepoFolderName) {
  EXPECT_EQ(repo_folder_name("TinyLlama/TinyLlama-1.1B-Chat-v1.0"), "models--TinyLlama--TinyLlama-1.1B-Chat-v1.0");
  EXPECT_EQ(repo_folder_name("gpt2"), "models--gpt2");
}

TEST(HubCache, PathsOfOneRepo) {
  RepoCache cache("/c", "org/name");
  EXPECT_EQ(cache.folder(), fs::path("/c/models--org--name"));
  EXPECT_EQ(cache.blob("abc"), fs::path("/c/models--org--name/blobs/abc"));
  EXPECT_EQ(cache.incomplete("abc"), fs::path("/c/models--org--name/blobs/abc.incomplete"));
  EXPECT_EQ(cache.pointer("c0", "sub/x.json"), fs::path("/c/models--org--name/snapshots/c0/sub/x.json"));
  EXPECT_EQ(cache.ref("main"), fs::path("/c/models--org--name/refs/main"));
  EXPECT_EQ(cache.lock("abc"), fs::path("/c/.locks/models--org--name/abc.lock"));
}

TEST(HubCache, RelativeBlobTargetGrowsWithDepth) {
  EXPECT_EQ(relative_blob_target("config.json", "e1"), "../../blobs/e1");
  EXPECT_EQ(relative_blob_target("a/b/c.bin", "e1"), "../../../../blobs/e1");
}

TEST(HubCache, EtagNormalisationAndChecks) {
  EXPECT_EQ(normalize_etag("\"abc\""), "abc");
  EXPECT_EQ(normalize_etag("W/\"abc\""), "abc");
  EXPECT_EQ(normalize_etag("abc"), "abc");
  EXPECT_TRUE(is_sha256_hex(std::string(64, 'a')));
  EXPECT_FALSE(is_sha256_hex(std::string(40, 'a')));
  EXPECT_TRUE(is_commit_hash(std::string(40, 'f')));
  EXPECT_FALSE(is_commit_hash("main"));
  EXPECT_FALSE(is_commit_hash(std::string(40, 'F')));
  EXPECT_TRUE(is_safe_etag("0123abcdef"));
  EXPECT_FALSE(is_safe_etag("../../etc/passwd"));
  EXPECT_FALSE(is_safe_etag(".."));
  EXPECT_FALSE(is_safe_etag(""));
}

TEST(HubCache, SafeRepoPaths) {
  EXPECT_TRUE(is_safe_repo_path("config.json"));
  EXPECT_TRUE(is_safe_repo_path("original/params.json"));
  EXPECT_FALSE(is_safe_repo_path("/etc/passwd"));
  EXPECT_FALSE(is_safe_repo_path("a/../../x"));
  EXPECT_FALSE(is_safe_repo_path("a//b"));
  EXPECT_FALSE(is_safe_repo_path("a\\b"));
  EXPECT_FALSE(is_safe_repo_path("dir/"));
}

TEST(HubCache, CacheDirFromEnvironment) {
  EnvGuard env;
  env.unset("HF_HUB_CACHE");
  env.unset("HUGGINGFACE_HUB_CACHE");
  env.unset("XDG_CACHE_HOME");
  env.set("HOME", "/home/u");
  env.unset("HF_HOME");
  EXPECT_EQ(default_cache_dir(), fs::path("/home/u/.cache/huggingface/hub"));
  env.set("XDG_CACHE_HOME", "/xdg");
  EXPECT_EQ(default_cache_dir(), fs::path("/xdg/huggingface/hub"));
  env.set("HF_HOME", "~/hf");
  EXPECT_EQ(default_cache_dir(), fs::path("/home/u/hf/hub"));
  env.set("HUGGINGFACE_HUB_CACHE", "/legacy");
  EXPECT_EQ(default_cache_dir(), fs::path("/legacy"));
  env.set("HF_HUB_CACHE", "/new");
  EXPECT_EQ(default_cache_dir(), fs::path("/new"));
}

TEST(HubCache, RefsAndSnapshotLinks) {
  fs::path dir = temp_dir("refs");
  RepoCache cache(dir, "org/m");
  std::string commit(40, 'a');
  EXPECT_FALSE(cache.find_snapshot("main"));
  cache.write_ref("main", commit);
  std::ifstream in(cache.ref("main"));
  std::string text((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(text, commit);  // no trailing newline, as huggingface_hub writes it
  EXPECT_EQ(cache.read_ref("main"), commit);
  EXPECT_FALSE(cache.find_snapshot("main"));  // ref without snapshot folder
  fs::create_directories(cache.folder() / "blobs");
  std::ofstream(cache.blob("e1")) << "hello";
  cache.link_pointer(commit, "sub/f.txt", "e1");
  cache.link_pointer(commit, "sub/f.txt", "e1");  // replacing an existing link is fine
  EXPECT_EQ(fs::read_symlink(cache.pointer(commit, "sub/f.txt")), fs::path("../../../blobs/e1"));
  std::ifstream f(cache.pointer(commit, "sub/f.txt"));
  std::string content;
  f >> content;
  EXPECT_EQ(content, "hello");
  EXPECT_EQ(cache.find_snapshot("main"), cache.snapshot(commit));
  EXPECT_EQ(cache.find_snapshot(commit), cache.snapshot(commit));
  fs::remove_all(dir);
}

TEST(HubCache, FreeBytesOverrideAndMissingFolders) {
  EnvGuard env;
  env.unset("BILLION_TEST_FREE_BYTES");
  EXPECT_GT(free_bytes("/definitely/not/here/x"), 0u);  // walks up to an existing parent
  env.set("BILLION_TEST_FREE_BYTES", "1234");
  EXPECT_EQ(free_bytes("/tmp"), 1234u);
}

TEST(HubCache, FormatBytes) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(3ull << 30), "3.0 GiB");
}

TEST(HubApi, GlobsMatchLikeHuggingfaceHub) {
  EXPECT_TRUE(glob_match("*.json", "config.json"));
  EXPECT_TRUE(glob_match("*.json", "original/params.json"));  // '*' crosses '/' (fnmatch)
  EXPECT_TRUE(glob_match("original/", "original/params.json"));
  EXPECT_FALSE(glob_match("*.json", "model.safetensors"));
  EXPECT_TRUE(glob_match("model-0000[12]-*", "model-00002-of-00002.safetensors"));
  EXPECT_FALSE(glob_match("Config.json", "config.json"));  // case-sensitive
}

TEST(HubApi, DefaultSelectionPrefersSafetensors) {
  std::vector<RepoFileEntry> files = {
      entry("config.json"), entry("generation_config.json"), entry("tokenizer.json"), entry("tokenizer_config.json"),
      entry("tokenizer.model"), entry("special_tokens_map.json"), entry("model-00001-of-00002.safetensors"),
      entry("model-00002-of-00002.safetensors"), entry("model.safetensors.index.json"), entry("pytorch_model.bin"),
      entry("pytorch_model.bin.index.json"), entry("README.md"), entry(".gitattributes"),
      entry("original/consolidated.00.pth"), entry("original/tokenizer.model"), entry("onnx/model.safetensors"),
      entry("arcade100k.tiktoken"), entry("chat_template.jinja")};
  auto chosen = paths(select_files(files, {}, "org/m"));
  std::vector<std::string> expected = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                       "tokenizer.model", "special_tokens_map.json", "model-00001-of-00002.safetensors",
                                       "model-00002-of-00002.safetensors", "model.safetensors.index.json",
                                       "arcade100k.tiktoken", "chat_template.jinja"};
  EXPECT_EQ(chosen, expected);
}

TEST(HubApi, IncludeReplacesTheChoiceButStillSkipsPickle) {
  std::vector<RepoFileEntry> files = {entry("config.json"), entry("model.safetensors"), entry("pytorch_model.bin"),
                                      entry("README.md")};
  EXPECT_EQ(paths(select_files(files, {"*.md", "*.bin"}, "org/m")), std::vector<std::string>{"README.md"});
  try {
    select_files(files, {"*.gguf"}, "org/m");
    FAIL() << "expected an error";
  } catch (const billion::Error& e) {
    EXPECT_EQ(e.exit_code(), exit_code::kNotFound);
  }
}

TEST(HubApi, PickleOnlyAndGgufOnlyReposAreExplained) {
  try {
    select_files({entry("config.json"), entry("pytorch_model.bin")}, {}, "EleutherAI/old");
    FAIL() << "expected an error";
  } catch (const billion::Error& e) {
    EXPECT_NE(std::string(e.what()).find("EleutherAI/old"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("pickle"), std::string::npos);
  }
  try {
    select_files({entry("model-Q8_0.gguf")}, {}, "org/gguf");
    FAIL() << "expected an error";
  } catch (const billion::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--include 'model-Q8_0.gguf'"), std::string::npos);
  }
}

TEST(HubApi, TokenLookupOrder) {
  EnvGuard env;
  fs::path home = temp_dir("token");
  env.set("HF_HOME", home.string());
  env.unset("HF_TOKEN_PATH");
  env.unset("HF_TOKEN");
  env.unset("HUGGING_FACE_HUB_TOKEN");
  EXPECT_FALSE(find_token(""));
  std::ofstream(home / "token") << "hf_file\n";
  EXPECT_EQ(find_token("")->value, "hf_file");
  EXPECT_EQ(find_token("")->source, (home / "token").string());
  env.set("HUGGING_FACE_HUB_TOKEN", "hf_legacy");
  EXPECT_EQ(find_token("")->value, "hf_legacy");
  env.set("HF_TOKEN", "hf_env");
  EXPECT_EQ(find_token("")->value, "hf_env");
  EXPECT_EQ(find_token("")->source, "HF_TOKEN");
  EXPECT_EQ(find_token(" hf_arg ")->value, "hf_arg");
  EXPECT_EQ(find_token("hf_arg")->source, "--token");
  env.set("HF_TOKEN", "");  // empty values are skipped
  EXPECT_EQ(find_token("")->value, "hf_legacy");
  fs::remove_all(home);
}

TEST(HubApi, RedactRemovesTheToken) {
  HubConfig c;
  c.token = Token{"hf_secret_value", "--token"};
  EXPECT_EQ(redact("a hf_secret_value b hf_secret_value", c), "a *** b ***");
}

TEST(HubApi, UrlsAndHeaders) {
  HubConfig c;
  c.endpoint = "https://huggingface.co";
  EXPECT_EQ(resolve_url(c, "org/m", "refs/pr/1", "sub dir/f.json"),
            "https://huggingface.co/org/m/resolve/refs%2Fpr%2F1/sub%20dir/f.json");
  c.token = Token{"hf_x", "--token"};
  EXPECT_EQ(hub_headers(c, "https://huggingface.co/org/m/resolve/main/a").size(), 1u);
  EXPECT_TRUE(hub_headers(c, "https://cdn-lfs.hf.co/x").empty());  // never to the CDN
  EXPECT_EQ(url_host("http://User@Host:8080/path?q"), "host:8080");
  EXPECT_EQ(link_next("<https://h/api?cursor=2>; rel=\"next\""), "https://h/api?cursor=2");
  EXPECT_EQ(link_next("<https://h/a>; rel=\"prev\", <https://h/b>; rel=\"next\""), "https://h/b");
  EXPECT_EQ(link_next(""), "");
}

TEST(HubApi, BackoffGrowsAndHonoursRetryAfter) {
  HubConfig c;
  c.backoff_ms = 100;
  EXPECT_GE(backoff_delay_ms(c, 0, 0), 80);
  EXPECT_LE(backoff_delay_ms(c, 0, 0), 120);
  EXPECT_GE(backoff_delay_ms(c, 3, 0), 640);
  EXPECT_LE(backoff_delay_ms(c, 30, 0), 36000);
  EXPECT_EQ(backoff_delay_ms(c, 0, 2.0), 2000);
}

TEST(HubApi, Sha256) {
  Sha256 h;
  h.update("abc", 3);
  EXPECT_EQ(h.hex_digest(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(ModelAlias, AliasesAndRepoIds) {
  EXPECT_EQ(to_repo_id("tinyllama"), "TinyLlama/TinyLlama-1.1B-Chat-v1.0");
  EXPECT_EQ(to_repo_id("llama3.2-1b"), "meta-llama/Llama-3.2-1B-Instruct");
  EXPECT_EQ(to_repo_id("stablelm"), "stabilityai/stablelm-2-1_6b-chat");
  EXPECT_EQ(to_repo_id("pythia-1b"), "EleutherAI/pythia-1b");
  EXPECT_EQ(to_repo_id("llama2-7b-chat"), "meta-llama/Llama-2-7b-chat-hf");
  EXPECT_EQ(to_repo_id("smollm2-135m"), "HuggingFaceTB/SmolLM2-135M-Instruct");
  EXPECT_EQ(to_repo_id("org/name"), "org/name");
  EXPECT_EQ(default_download_models().size(), 4u);
  EXPECT_THROW(to_repo_id("nonsense"), billion::Error);
  EXPECT_FALSE(is_repo_id("../etc"));
  EXPECT_FALSE(is_repo_id("a/b/c"));
  EXPECT_FALSE(is_repo_id("org/.."));
  EXPECT_FALSE(is_repo_id("org/a b"));
}

TEST(ModelAlias, ResolveModelPath) {
  EnvGuard env;
  fs::path dir = temp_dir("resolve");
  env.set("HF_HUB_CACHE", (dir / "cache").string());
  // An existing path is returned as is.
  EXPECT_EQ(billion::resolve_model_path(dir.string()), dir.string());
  // A known model that is not downloaded: exit code 9 and the command to run.
  try {
    billion::resolve_model_path("tinyllama");
    FAIL() << "expected an error";
  } catch (const billion::Error& e) {
    EXPECT_EQ(e.exit_code(), exit_code::kNotDownloaded);
    EXPECT_NE(std::string(e.what()).find("billion download tinyllama"), std::string::npos);
  }
  // After a download: refs/main → snapshots/<commit>.
  RepoCache cache(dir / "cache", "TinyLlama/TinyLlama-1.1B-Chat-v1.0");
  std::string commit(40, 'b');
  fs::create_directories(cache.snapshot(commit));
  cache.write_ref("main", commit);
  EXPECT_EQ(billion::resolve_model_path("tinyllama"), cache.snapshot(commit).string());
  EXPECT_EQ(billion::resolve_model_path("TinyLlama/TinyLlama-1.1B-Chat-v1.0"), cache.snapshot(commit).string());
  EXPECT_THROW(billion::resolve_model_path("no such thing"), billion::Error);
  fs::remove_all(dir);
}

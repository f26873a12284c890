// Exit codes of `billion download` (and of any command that looks a model up in the cache), so
// scripts can tell "accept the licence" from "bad token" from "disk full" without parsing text.
// Documented in docs/DOWNLOAD.md and in `billion download --help`; keep the three in step.
#pragma once

namespace billion::hub::exit_code {

inline constexpr int kGeneric = 1;       // anything else (bad input, pickle-only repo, I/O error)
inline constexpr int kGated = 3;         // gated repo: licence not accepted, or no token sent
inline constexpr int kAuth = 4;          // token rejected (invalid/expired) or lacking permission
inline constexpr int kNotFound = 5;      // repo, revision or file does not exist (or is private)
inline constexpr int kDiskSpace = 6;     // not enough free space in the cache's file system
inline constexpr int kIntegrity = 7;     // sha256/size of a downloaded file is wrong
inline constexpr int kNetwork = 8;       // network failure or malformed answer after retries
inline constexpr int kNotDownloaded = 9; // model not in the cache (offline, or another command)

}  // namespace billion::hub::exit_code

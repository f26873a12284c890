// Q4_0, Q8_0, Q4_K and Q6_K weights re-laid at load for integer dot products over 16 rows at once
// (WeightLayout::Interleaved16; "Q4_0x16", "Q8_0x16", "Q4_Kx16", "Q6_Kx16"), and F16/BF16 in runs
// of four rows for the AVX2 float tile (at the end).
//
// In a GGUF file a row is a run of blocks (fp16 scale, then 16 bytes of nibbles for Q4_0 or 32
// int8 for Q8_0), so a kernel that wants one output per vector lane must gather 16 rows' scales
// and quants from 16 places, and block loads are unaligned. Interleaved, the 16 rows of a group
// lie together, and the blocks of four consecutive groups (a tile of 64 rows) lie in the order
// decode reads them:
//
//   tile t (groups 4t .. 4t+G-1, G = 4 except possibly the last tile: rows 64t .. 64t+16G-1),
//   starting where its first row started, nb = cols/32 blocks; block b of the tile at
//   b·G·(H + Q) from the tile's start:
//     [G × H header bytes]        group i's 16 row scales (H = 32: 16 fp16) at H·i
//     [G × Q quant bytes]         group i's quants at G·H + Q·i, Q = 16·16 (Q4_0) or 16·32
//                                 (Q8_0): Q/64 steps of 64 bytes, step s = for row j = 0..15
//                                 the row's quant bytes 4s .. 4s+3
//
// so one 64-byte load gives each of the 16 lanes four bytes of its own row. Step s pairs with
// activation elements 4s..4s+3 (Q8_0: byte k is element k), and for Q4_0 also 16+4s..16+4s+3
// (byte k holds element k in its low nibble, k+16 in its high one). One vpdpbusd per operand
// adds four products to every lane. The size is unchanged, and in a whole tile every header run
// and step is 64-byte aligned when the buffer is. Decode multiplies a tile's four groups at once
// and so reads the matrix front to back in one stream: with each group's scales and quants in
// runs of their own (eight streams for four groups), one core read 21-23 GB/s of Q4_0 and 19-23
// of Q8_0, in this order 28-31 and 22-28 (bench_kernels --tokens 1, 32000x2048, Zen 4, 2 MiB
// pages; docs/PERFORMANCE.md). A row range that starts at a multiple of 64 rows is itself a
// matrix in this layout, which is how the matmul driver hands out work.
//
// The arithmetic of an interleaved matmul (ref::mm_q4_0x16 / ref::mm_q8_0x16 define it; every
// ISA gives their bits): per (row, token) and block b in order, the exact integer dot product
// isum_b (of q-8 for Q4_0, of the int8 for Q8_0, with the activation's int8), then
// acc = fma(float(isum_b), d_w·d_a, acc) from acc = 0. That is one float step per block and
// output instead of the AVX2 vec_dot's eight-lane chain, so a result differs from the plain
// layout's by float rounding only (tests/test_interleave.cpp bounds it).
//
// Q4_1 (fp16 d and m, then Q4_0's 16 bytes of nibbles) lies the same way, except that a group's
// block header holds its 16 rows' d and then their 16 m (H = 64). It exists only in WeightLayout::Interleaved16Ggml (kernels.h): multiplied in ggml's vec_dot order,
// the plain Q4_1 tiles' bits (SmolLM2's weights stay bit-identical to llama.cpp's).
//
// Q4_K (256-element super-blocks of 144 bytes: fp16 d and dmin, 12 bytes of 6-bit sub-block
// scales and mins, 128 bytes of nibbles) is interleaved super-block by super-block, each one's
// 16 rows together in 2304 bytes:
//
//   group g, super-block b at 2304·b from the group's start:
//     [0, 32)       16 fp16 d
//     [32, 64)      16 fp16 dmin
//     [64, 256)     3 steps: step k = for row i = 0..15 the row's scale bytes 4k .. 4k+3
//     [256, 2304)   32 steps: step 8c+s = for row i the row's qs bytes 32c+4s .. 32c+4s+3
//
// Step 8c+s pairs with activation elements 64c+4s.. (low nibbles, sub-block 2c) and
// 64c+32+4s.. (high nibbles, sub-block 2c+1), as the file's byte order does within a row. A
// super-block's scale words unpack for all 16 rows with a few 32-bit lane operations. Unlike the
// 32-element formats, the arithmetic does not change: per (row, token, super-block) the integer
// sums are exact and the float expression is ref::mm_q4_k's, so an interleaved Q4_K matmul gives
// the plain layout's bits (the K-quants never used ggml's eight-lane float order).
//
// Q6_K (210-byte super-blocks: ql[128] low nibbles, qh[64] high bit pairs, 16 int8 sub-block
// scales, fp16 d) likewise, each super-block's 16 rows together in 3360 bytes. 3360 is 52.5
// cache lines, so the d's of super-blocks 2p and 2p+1 sit together between their steps, which
// keeps every step 64-byte aligned when the group is (it is, in an aligned buffer, when nb is
// even, as in every target model):
//
//   group g, super-block b at 3360·b from the group's start; S = 0 (b even) or 32 (b odd):
//     [S, S+2048)           32 ql steps: step s = for row i = 0..15 the row's ql bytes 4s .. 4s+3
//     [S+2048, S+3072)      16 qh steps: step u = for row i the row's qh bytes 4u .. 4u+3
//     [S+3072, S+3328)      16 × 16 scale bytes: sub-block j's 16 row scales at S+3072+16j
//     [3328, 3360) (b even) or [0, 32) (b odd): 16 fp16 d
//
// ql step 16h+4c+i (h < 2, c < 4, i < 4) holds elements 4i .. 4i+3 of 16-element sub-blocks
// 8h+c (low nibbles) and 8h+c+4 (high nibbles); their two high bits are bit pair c/2 (low
// nibbles) or c/2+2 (high) of qh step 8h+4(c%2)+i: the file's order within a row, 4 bytes at a
// time. A sub-block's 16 scales sign-extend to 16 int32 lanes in one instruction. As for Q4_K,
// the arithmetic is ref::mm_q6_k's, so the interleaved matmul gives the plain layout's bits.
//
// F16 and BF16 (16-bit floats, "F16x4"/"BF16x4") lie in runs of four rows, eight columns at a time:
//
//   rows 4q .. 4q+3 start where row 4q started (4q·cols elements from the matrix's start);
//   their step s (columns 8s .. 8s+7) is 32 elements, 64 bytes, at 32·s: row 4q+j's eight at 8j
//
// so the AVX2 float tile, which multiplies four rows at once with one eight-lane accumulator per
// (row, token), reads one stream front to back, one cache line per step, instead of four rows
// 4 KiB or more apart: one core read 20-30 GB/s of TinyLlama's F16 matrices this way against
// 14-18 (bench_kernels with BILLION_KERNELS=avx2 against --plain, two alternations, Zen 4; both
// cores 28-42 against 25-31). The AVX-512 table keeps the file's rows (its tile streams one row
// at a time; see dispatch.cpp). The arithmetic does not change: every ISA's interleaved tile gives
// its plain tile's bits, and ref::mm_f16x4 the reference's. Every 16-row group is four such runs,
// so the layout keeps Interleaved16's rule (rows a multiple of 16; cols of 8 here).
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "formats/ggml_types.h"
#include "kernels/quant.h"

namespace billion::kernels {

constexpr int kInterleaveRows = 16;
constexpr int64_t kInterleaveStepBytes = 64;  // one load: 4 quant bytes of each of the 16 rows

constexpr int64_t kTileGroups = 4;  // Q4_0, Q4_1, Q8_0: groups whose blocks lie together
constexpr int64_t kTileRows = kTileGroups * kInterleaveRows;

// Where the blocks of Q4_0, Q4_1 and Q8_0 lie in their interleaved layout (the tiles above), for
// a matrix of `groups` 16-row groups and `blocks` blocks per row; offsets from its start.
struct BlockTiles {
  int64_t groups = 0, blocks = 0;
  int64_t header_bytes = 0;  // per group and block: 16 fp16 d (32), or 16 d then 16 m (64)
  int64_t quant_bytes = 0;   // per group and block: 16 rows' quants

  int64_t tiles() const { return (groups + kTileGroups - 1) / kTileGroups; }
  int64_t tile_groups(int64_t t) const { return groups - t * kTileGroups < kTileGroups ? groups - t * kTileGroups : kTileGroups; }
  int64_t tile_start(int64_t t) const { return t * kTileGroups * blocks * (header_bytes + quant_bytes); }
  // Bytes from block b of a tile to block b+1: its groups' headers and quants.
  int64_t tile_block_bytes(int64_t t) const { return tile_groups(t) * (header_bytes + quant_bytes); }
  // Group i of tile t, block 0: its header and its quants (add b·tile_block_bytes(t) for block b).
  int64_t header(int64_t t, int64_t i) const { return tile_start(t) + i * header_bytes; }
  int64_t quants(int64_t t, int64_t i) const { return tile_start(t) + tile_groups(t) * header_bytes + i * quant_bytes; }
};
// The tiles of a rows × cols matrix of type Q4_0, Q4_1 or Q8_0 (rows a multiple of 16).
BlockTiles block_tiles(GgmlType type, int64_t rows, int64_t cols);

// Calls fn(t, std::integral_constant<int, G>{}) for every tile t of G groups, so that a decode
// kernel can be a template on G (its accumulators in registers). Inline: each ISA's file
// instantiates it with its own kernel.
template <typename Fn>
inline void for_each_tile(const BlockTiles& tiles, Fn&& fn) {
  for (int64_t t = 0; t < tiles.tiles(); ++t) switch (tiles.tile_groups(t)) {
      case 4: fn(t, std::integral_constant<int, 4>{}); break;
      case 3: fn(t, std::integral_constant<int, 3>{}); break;
      case 2: fn(t, std::integral_constant<int, 2>{}); break;
      default: fn(t, std::integral_constant<int, 1>{}); break;
    }
}

// Rows a share of an interleaved matrix must start at (a multiple of) so that it is a matrix in
// the same layout: a tile of 64 rows for Q4_0, Q4_1 and Q8_0, a group of 16 for the K-quants, a
// run of 4 for F16 and BF16.
int64_t interleaved_share_rows(GgmlType type);

// The F16/BF16 layout (the diagram above): element (r, i) of a matrix of `cols` columns lies
// at half_x4_index(r, i, cols) elements from its start.
constexpr int64_t kHalfRunRows = 4, kHalfStepCols = 8;
constexpr int64_t half_x4_index(int64_t r, int64_t i, int64_t cols) {
  return (r - r % kHalfRunRows) * cols + (i / kHalfStepCols) * (kHalfRunRows * kHalfStepCols) +
         (r % kHalfRunRows) * kHalfStepCols + i % kHalfStepCols;
}

// Offsets within an interleaved Q4_K super-block of 16 rows (the diagram above).
constexpr int64_t kQ4KxBytes = kInterleaveRows * 144;  // 16 rows' super-blocks
constexpr int64_t kQ4KxDmin = 32, kQ4KxScales = 64, kQ4KxQuants = 256;

// Offsets within an interleaved Q6_K super-block of 16 rows (the diagram above): the steps start
// at q6_kx_steps(b), the qh steps and scales that many bytes after them, the d's at q6_kx_d(b).
constexpr int64_t kQ6KxBytes = kInterleaveRows * 210;  // 16 rows' super-blocks
constexpr int64_t kQ6KxQh = 2048, kQ6KxScales = 3072, kQ6KxD = 3328;
constexpr int64_t q6_kx_steps(int64_t b) { return b % 2 == 0 ? 0 : 32; }
constexpr int64_t q6_kx_d(int64_t b) { return b % 2 == 0 ? kQ6KxD : 0; }

// The interleaved kernels take Q8A activation rows followed by nb int32 block sums Σq (the
// Q4_0/Q8_0 offset corrections need them): the matmul driver writes them once per call, next to
// the quantization, instead of every tile call recomputing them for every row chunk.
inline const int32_t* q8a_block_sums(const uint8_t* act_row, int64_t nb) {
  return reinterpret_cast<const int32_t*>(act_row + nb * sizeof(BlockQ8A));
}

// Q8A activations of 16 tokens side by side ("token tiles"), for a prefill tile that holds tokens
// in its vector lanes and multiplies int16 pairs (avx2::mm_q8_0x16_tokens16). Tile i holds tokens
// 16i .. 16i+15; block b of a tile lies at b·kTokenTileBlockBytes from the tile's start:
//
//   [16 × 64 bytes]   pair k = 0..15: token j's elements 2k and 2k+1 of the block as int16, at 4j
//   [64 bytes]        the 16 tokens' d (float)
//
// Tokens past the last are zeros (d = 0). A tile is nb·kTokenTileBlockBytes bytes, 68·nb per
// token, so the tile of token t (a multiple of 16) starts at t·68·nb bytes, as a Q8A row starts
// at t·row_bytes: the matmul driver hands out token chunks of tiles the same way.
constexpr int64_t kTokenTile = 16;
constexpr int64_t kTokenTileBlockBytes = kTokenTile * 64 + kTokenTile * 4;
constexpr int64_t kTokenTileBytesPerTokenBlock = kTokenTileBlockBytes / kTokenTile;  // 68

// Writes token tile `tile` (nb·kTokenTileBlockBytes bytes at out) from the Q8A rows of n_tokens
// tokens (row t at q8a + t·q8a_row_bytes, nb blocks each).
void q8a_token_tile(const uint8_t* q8a, size_t q8a_row_bytes, int64_t n_tokens, int64_t nb, int64_t tile, uint8_t* out);

// True when a matrix of this type and shape can be interleaved: Q4_0, Q4_1, Q8_0, Q4_K, Q6_K,
// F16 or BF16, rows a multiple of 16 (every matrix of the target models) and cols a multiple of
// the block size (8 for F16 and BF16).
bool can_interleave(GgmlType type, int64_t rows, int64_t cols);

// dst (rows × row_bytes bytes, row_bytes = type_row_bytes(type, cols)) ← the matrix at src,
// whose row r is at src + r·src_row_bytes, in the layouts above. Requires can_interleave.
void interleave_rows(GgmlType type, const uint8_t* src, size_t src_row_bytes, int64_t rows, int64_t cols,
                     uint8_t* dst);

// Row r of an interleaved rows × cols matrix back in the file's layout:
// out [type_row_bytes(type, cols)].
void interleaved_row_bytes(GgmlType type, const uint8_t* data, int64_t rows, int64_t cols, int64_t r, uint8_t* out);

// Row r of an interleaved matrix back as floats: out [cols], the values dequantize_row gives
// for the original row (the layout moves bytes, it changes none).
void dequantize_interleaved_row(GgmlType type, const uint8_t* data, int64_t rows, int64_t cols, int64_t r, float* out);

}  // namespace billion::kernels

/*
 * Streaming XXH3-128 for file digests, where runs of zeros (holes) are
 * hashed without touching a zero byte.
 *
 * Why not plain XXH3_128bits_update() with a zero buffer: XXH3 still costs
 * CPU per byte (measured 11-17 GB/s with a 64 KiB zero buffer), so the
 * 16 TiB hole of a sparse file took ~20 minutes. For zero input the accumulator lanes of XXH3
 * do not mix: one 1 KiB block of zeros maps each lane x to
 * scramble(x + A) + B with per-lane constants taken from the secret. So a
 * run of zeros is a few multiply-adds per KiB, not a pass over the bytes
 * (measured 120-200 GB/s of zeros with AVX2: still linear, ~90 s for
 * 16 TiB, which is why digests are also interruptible).
 * The result is bit for bit XXH3-128 of the same bytes: checked once at
 * first use against the library's own streaming of real zeros (the jump is
 * switched off if they ever disagree), and by test_xxh3.
 */
#ifndef SFS_XXH3_H
#define SFS_XXH3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sfs_xxh3;

/* A fresh state (seed 0, default secret), or NULL. */
struct sfs_xxh3 *sfs_xxh3_new(void);
void sfs_xxh3_free(struct sfs_xxh3 *h);

void sfs_xxh3_update(struct sfs_xxh3 *h, const void *buf, size_t len);

/* As if len zero bytes were passed to sfs_xxh3_update(). */
void sfs_xxh3_zeros(struct sfs_xxh3 *h, uint64_t len);

/* The digest of everything so far, canonical (big-endian) bytes. */
void sfs_xxh3_digest(const struct sfs_xxh3 *h, unsigned char out[16]);

/*
 * Is the zero-run jump in use (it agreed with the library at first use)?
 * Off also after sfs_xxh3_use_jump(false) (benchmarks, tests).
 */
bool sfs_xxh3_jump_ok(void);
void sfs_xxh3_use_jump(bool on);

#endif

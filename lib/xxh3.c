#include "sfs/xxh3.h"

#include <endian.h>
#include <pthread.h>
#ifdef __x86_64__
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

/*
 * Our own copy of XXH3 (static, prefixed): the jump below reads and
 * writes its state, so the state's layout must be the one this file was
 * compiled with, not whatever libxxhash.so is installed.
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

struct sfs_xxh3 {
	XXH3_state_t s;
};

/* Zeros fed the ordinary way: small enough to stay in L2. */
static const unsigned char zeros[64 << 10];

/* Fed before a jump so that everything XXH3 keeps buffered is zeros. */
#define LEAD 2048u

static bool jump_on = true;
static bool jump_verified;
static pthread_once_t verify_once = PTHREAD_ONCE_INIT;

static uint64_t rd64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/*
 * blocks times, per lane: x = scramble(x + a) + b, scramble being XXH3's
 * (xorshift 47, xor key, times PRIME32_1). One chain of dependent steps
 * per lane: measured 14 ns per block in plain C (the lanes spill), 5.6 ns
 * with AVX2 (two vectors of four lanes, all in registers).
 */
static void lanes_plain(uint64_t x[8], const uint64_t a[8], const uint64_t b[8],
			const uint64_t k[8], uint64_t blocks)
{
	for (uint64_t n = 0; n < blocks; n++) {
		for (size_t i = 0; i < 8; i++) {
			uint64_t y = x[i] + a[i];

			y ^= y >> 47;
			y ^= k[i];
			y *= XXH_PRIME32_1;
			x[i] = y + b[i];
		}
	}
}

#ifdef __x86_64__
/* x * PRIME32_1 mod 2^64 from two 32x32->64 multiplies. */
__attribute__((target("avx2")))
static __m256i lanes_step(__m256i x, __m256i a, __m256i b, __m256i k)
{
	const __m256i prime = _mm256_set1_epi64x(XXH_PRIME32_1);
	__m256i y = _mm256_add_epi64(x, a), lo, hi;

	y = _mm256_xor_si256(y, _mm256_srli_epi64(y, 47));
	y = _mm256_xor_si256(y, k);
	lo = _mm256_mul_epu32(y, prime);
	hi = _mm256_mul_epu32(_mm256_srli_epi64(y, 32), prime);
	return _mm256_add_epi64(_mm256_add_epi64(lo, _mm256_slli_epi64(hi, 32)), b);
}

__attribute__((target("avx2")))
static void lanes_avx2(uint64_t x[8], const uint64_t a[8], const uint64_t b[8],
		       const uint64_t k[8], uint64_t blocks)
{
#define LOAD(p) _mm256_loadu_si256((const __m256i *)(p))
	__m256i x0 = LOAD(x), x1 = LOAD(x + 4), a0 = LOAD(a), a1 = LOAD(a + 4);
	__m256i b0 = LOAD(b), b1 = LOAD(b + 4), k0 = LOAD(k), k1 = LOAD(k + 4);
#undef LOAD

	for (uint64_t n = 0; n < blocks; n++) {
		x0 = lanes_step(x0, a0, b0, k0);
		x1 = lanes_step(x1, a1, b1, k1);
	}
	_mm256_storeu_si256((__m256i *)x, x0);
	_mm256_storeu_si256((__m256i *)(x + 4), x1);
}
#endif

static void lanes(uint64_t x[8], const uint64_t a[8], const uint64_t b[8],
		  const uint64_t k[8], uint64_t blocks)
{
#ifdef __x86_64__
	if (__builtin_cpu_supports("avx2"))
		return lanes_avx2(x, a, b, k, blocks);
#endif
	lanes_plain(x, a, b, k, blocks);
}

/*
 * Advance s over blocks whole blocks of zeros (nbStripesPerBlock stripes
 * of 64 bytes each). Precondition: what s holds buffered, and the stripe
 * kept before it, are zeros (true after LEAD zeros through update). The
 * buffered bytes then stay as they are: only the consumed stripes move on
 * by whole blocks, starting at the same stripe of a block as before.
 *
 * A zero stripe at block position st adds, to lane i, the product of the
 * two 32-bit halves of secret word st + i (the data xor key is the key);
 * lanes do not exchange anything (the swapped lane gets the data: zero).
 * The block boundary scrambles each lane alone. Starting at stripe p of
 * a block, one block is thus x -> scramble(x + A) + B per lane, A summing
 * stripes p..end, B stripes 0..p-1.
 */
static void jump_blocks(XXH3_state_t *s, uint64_t blocks)
{
	const unsigned char *secret = s->extSecret ? s->extSecret : s->customSecret;
	size_t per = s->nbStripesPerBlock, p = s->nbStripesSoFar;
	uint64_t a[XXH_ACC_NB] = { 0 }, b[XXH_ACC_NB] = { 0 }, k[XXH_ACC_NB];
	uint64_t x[XXH_ACC_NB];

	for (size_t i = 0; i < XXH_ACC_NB; i++) {
		for (size_t st = 0; st < per; st++) {
			uint64_t key = rd64(secret + st * XXH_SECRET_CONSUME_RATE + 8 * i);
			uint64_t m = (key & 0xffffffffu) * (key >> 32);

			if (st >= p)
				a[i] += m;
			else
				b[i] += m;
		}
		k[i] = rd64(secret + s->secretLimit + 8 * i);
		x[i] = s->acc[i];
	}
	lanes(x, a, b, k, blocks);
	memcpy(s->acc, x, sizeof(x));
	s->totalLen += blocks * per * XXH_STRIPE_LEN;
}

static void zeros_plain(XXH3_state_t *s, uint64_t len)
{
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);

		XXH3_128bits_update(s, zeros, n);
		len -= n;
	}
}

static void zeros_jump(XXH3_state_t *s, uint64_t len)
{
	uint64_t block = (uint64_t)s->nbStripesPerBlock * XXH_STRIPE_LEN;

	if (len >= LEAD + 2 * block) {
		XXH3_128bits_update(s, zeros, LEAD);
		len -= LEAD;
		jump_blocks(s, len / block);
		len %= block;
	}
	zeros_plain(s, len);
}

/* Both ways over prefix, run of zeros, suffix: do they agree? */
static bool agree(size_t prefix, uint64_t run, size_t suffix)
{
	static const unsigned char junk[300] = "stablefs checks its zero jump";
	XXH3_state_t a, b;

	XXH3_INITSTATE(&a);
	XXH3_INITSTATE(&b);
	XXH3_128bits_reset(&a);
	XXH3_128bits_reset(&b);
	XXH3_128bits_update(&a, junk, prefix);
	XXH3_128bits_update(&b, junk, prefix);
	zeros_plain(&a, run);
	zeros_jump(&b, run);
	XXH3_128bits_update(&a, junk, suffix);
	XXH3_128bits_update(&b, junk, suffix);
	return XXH128_isEqual(XXH3_128bits_digest(&a), XXH3_128bits_digest(&b));
}

static void verify(void)
{
	static const size_t ends[] = { 0, 1, 63, 64, 65, 255, 256, 300 };
	static const uint64_t runs[] = { 5000, 1 << 20, (1 << 20) + 4097 };
	bool ok = true;

	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++)
		for (size_t j = 0; j < sizeof(runs) / sizeof(runs[0]); j++)
			ok = ok && agree(ends[i], runs[j], ends[(i + j) % 8]);
	jump_verified = ok;
}

bool sfs_xxh3_jump_ok(void)
{
	pthread_once(&verify_once, verify);
	return jump_verified && __atomic_load_n(&jump_on, __ATOMIC_RELAXED);
}

void sfs_xxh3_use_jump(bool on)
{
	__atomic_store_n(&jump_on, on, __ATOMIC_RELAXED);
}

struct sfs_xxh3 *sfs_xxh3_new(void)
{
	struct sfs_xxh3 *h;

	/* XXH3_state_t wants 64-byte alignment. */
	if (posix_memalign((void **)&h, 64, sizeof(*h)))
		return NULL;
	XXH3_INITSTATE(&h->s);
	XXH3_128bits_reset(&h->s);
	return h;
}

void sfs_xxh3_free(struct sfs_xxh3 *h)
{
	free(h);
}

void sfs_xxh3_update(struct sfs_xxh3 *h, const void *buf, size_t len)
{
	XXH3_128bits_update(&h->s, buf, len);
}

void sfs_xxh3_zeros(struct sfs_xxh3 *h, uint64_t len)
{
	if (sfs_xxh3_jump_ok())
		zeros_jump(&h->s, len);
	else
		zeros_plain(&h->s, len);
}

void sfs_xxh3_digest(const struct sfs_xxh3 *h, unsigned char out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&h->s));
	memcpy(out, c.digest, 16);
}

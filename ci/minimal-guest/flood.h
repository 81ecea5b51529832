/*
 * A deterministic stream of framed stdout records (docs/abi.md section 2)
 * for testing that the console path loses and changes nothing.  The test
 * guest writes it; floodgen, built for the host from the same code, prints
 * the same bytes for comparison.
 *
 * Each record is RS 'O' PAYLOAD LF.  The payload is the record's number
 * in decimal, a space, and 0-199 printable ASCII bytes chosen by a
 * xorshift generator; '\' is left out so that the payload needs no escape.
 * The stream ends with the first record that brings it to the requested
 * size or beyond.
 */
#ifndef MINIMAL_GUEST_FLOOD_H
#define MINIMAL_GUEST_FLOOD_H

#include <stdint.h>

/* Longest record: RS, kind, 20 digits, space, 199 bytes, LF. */
#define FLOOD_RECORD_MAX	256

struct flood {
	uint64_t state;		/* xorshift64 state, never 0 */
	uint64_t number;	/* number of the next record */
	uint64_t left;		/* bytes still to produce */
};

static inline void flood_init(struct flood *f, uint64_t bytes)
{
	f->state = 0x9e3779b97f4a7c15ULL;
	f->number = 0;
	f->left = bytes;
}

static inline uint64_t flood_random(struct flood *f)
{
	uint64_t x = f->state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	f->state = x;
	return x;
}

/* Writes the next record into buf; returns its length, 0 at the end. */
static inline unsigned int flood_next(struct flood *f, char *buf)
{
	char digits[20];
	unsigned int len = 0, nd = 0, payload, i;
	uint64_t n = f->number++;

	if (f->left == 0)
		return 0;

	buf[len++] = 0x1e;
	buf[len++] = 'O';
	do {
		digits[nd++] = (char)('0' + n % 10);
		n /= 10;
	} while (n != 0);
	while (nd > 0)
		buf[len++] = digits[--nd];
	buf[len++] = ' ';

	payload = (unsigned int)(flood_random(f) % 200);
	for (i = 0; i < payload; i++) {
		/* 94 printable bytes: 0x20-0x7e without '\' (0x5c). */
		char c = (char)(0x20 + flood_random(f) % 94);

		if (c >= 0x5c)
			c++;
		buf[len++] = c;
	}
	buf[len++] = '\n';

	f->left = f->left > len ? f->left - len : 0;
	return len;
}

#endif

/*
 * floodgen BYTES: prints on stdout the record stream that the test guest
 * writes for mg.flood=BYTES, so that a test can compare the two with cmp.
 */
#include <stdio.h>
#include <stdlib.h>

#include "flood.h"

int main(int argc, char **argv)
{
	char buf[FLOOD_RECORD_MAX];
	struct flood f;
	unsigned int len;

	if (argc != 2) {
		fprintf(stderr, "usage: floodgen BYTES\n");
		return 2;
	}
	flood_init(&f, strtoull(argv[1], NULL, 0));
	while ((len = flood_next(&f, buf)) != 0)
		fwrite(buf, 1, len, stdout);
	return fflush(stdout) == 0 ? 0 : 1;
}

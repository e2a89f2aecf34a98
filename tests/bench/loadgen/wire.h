/*
 * The text loadgen writes and reads on the wire: decimal numbers and
 * "SEC.NSEC" times in the IAMAT lines it sends, the two times of a flooded
 * AT line its probe receives, and the probe's answers to a worker's link
 * handshake (docs/link-protocol.md). No I/O and no state.
 */
#ifndef LOADGEN_WIRE_H
#define LOADGEN_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define LG_U64_MAX_LEN  20 /* digits of the largest uint64_t */
#define LG_TIME_MAX_LEN (LG_U64_MAX_LEN + 10)
#define LG_PREFIX_MAX   63 /* longest client ID prefix (--prefix) */
#define LG_LINE_MAX     256 /* an IAMAT line with the longest prefix fits */

/* V in decimal at DST (LG_U64_MAX_LEN bytes at most, no NUL); its length. */
size_t lg_fmt_u64(char *dst, uint64_t v);

/* NS since the epoch as "SEC.NSEC" at DST (LG_TIME_MAX_LEN at most, no
 * NUL); its length. */
size_t lg_fmt_time(char *dst, uint64_t ns);

/* "IAMAT PREFIX+ID LOCATION TIME\n" at LINE (LG_LINE_MAX bytes): PREFIX
 * of LG_PREFIX_MAX bytes at most, ID of LG_U64_MAX_LEN, TIME of
 * LG_TIME_MAX_LEN; its length. Every client is at the same place. */
size_t lg_fmt_iamat(char *line, const char *prefix, const char *id, size_t idlen, const char *time,
                    size_t timelen);

/* "AT SERVER DIFF ID LOC TIME" whose ID starts with PREFIX: 1, with *SENT
 * (TIME, 0 when it is no time) and *GOT (TIME + DIFF: the first server's
 * receipt) in ns since the epoch; 0 for any other line. */
int lg_at_times(const char *line, size_t len, const char *prefix, uint64_t *sent, uint64_t *got);

/* What a neighbour named NAME answers to the link line LINE (HELLO: WELCOME,
 * AUTH: OK, and *AUTHED set; PING: PONG) at OUT; its length, 0 for none. */
size_t lg_link_reply(const char *line, size_t len, const char *name, char *out, size_t size,
                     int *authed);

#endif

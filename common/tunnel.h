/*
 * tunnel.h: two sockets joined, bytes copied both ways.
 *
 * For WebSocket and other Upgrade tunnels after a 101, for CONNECT, and
 * for lbd's TCP mode.  Each direction has a buffer of TUNNEL_BUF bytes:
 * reading from one side stops while the other side has not taken what
 * was read (backpressure).  A direction whose reads fill the buffer is
 * a bulk transfer: between two plain sockets its bytes then go through
 * a pipe with splice(2), never copied to user space (TUNNEL_PIPE more
 * bytes at most in flight).  A side's end of stream is passed on as a
 * shutdown of the other side once its buffered bytes are written; the
 * tunnel closes when both directions are done, on an error, or after
 * <idle> ms without traffic.
 */
#ifndef COMMON_TUNNEL_H
#define COMMON_TUNNEL_H

#include "buf.h"
#include "event.h"
#include "sock.h"

#define TUNNEL_BUF	(64 * 1024)
#define TUNNEL_PIPE	(64 * 1024)	/* bytes spliced into a pipe */
#define TUNNEL_PIPES	1024		/* pipes a process may hold (and
					   no more than RLIMIT_NOFILE / 16) */
#define TUNNEL_PIPES_IDLE 16		/* of which kept unused */

struct tunnel;

/*
 * Join <a> and <b> (both connected and non-blocking; their watchers are
 * re-registered here).  <to_b> and <to_a> hold bytes already received
 * that must go out first (NULL: none); the tunnel takes them over.
 * <spliced> (or NULL) counts the bytes moved with splice(2).  <done> is
 * called once, when the tunnel closes, with the byte counts.
 */
struct stats_metric;
struct tunnel	*tunnel_new(struct ev_loop *, struct sock *, struct sock *,
		    struct buf *, struct buf *, uint32_t, struct stats_metric *,
		    void (*)(void *, uint64_t, uint64_t), void *);
void		 tunnel_close(struct tunnel *);
int		 tunnel_count(void);
void		 tunnel_collect(void);

#endif

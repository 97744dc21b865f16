/*
 * tunnel.h: two sockets joined, bytes copied both ways.
 *
 * For WebSocket and other Upgrade tunnels after a 101, for CONNECT, and
 * for lbd's TCP mode.  Each direction has a buffer of TUNNEL_BUF bytes:
 * reading from one side stops while the other side has not taken what
 * was read (backpressure).  A side's end of stream is passed on as a
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

struct tunnel;

/*
 * Join <a> and <b> (both connected and non-blocking; their watchers are
 * re-registered here).  <to_b> and <to_a> hold bytes already received
 * that must go out first (NULL: none); the tunnel takes them over.
 * <done> is called once, when the tunnel closes, with the byte counts.
 */
struct tunnel	*tunnel_new(struct ev_loop *, struct sock *, struct sock *,
		    struct buf *, struct buf *, uint32_t,
		    void (*)(void *, uint64_t, uint64_t), void *);
void		 tunnel_close(struct tunnel *);
int		 tunnel_count(void);
void		 tunnel_collect(void);

#endif

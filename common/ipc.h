/*
 * ipc.h: framed messages between the master, its workers and helpers.
 *
 * Channels are SOCK_SEQPACKET socketpairs, so the kernel keeps message
 * boundaries.  A message on the wire:
 *
 *	offset	size	field
 *	0	4	type	(host byte order: both ends are one machine)
 *	4	4	len	payload bytes that follow, <= IPC_MAXPAYLOAD
 *	8	len	payload
 *
 * with at most one file descriptor in an SCM_RIGHTS control message.
 * The receiver checks the frame against a table of the types it knows
 * (with the least and most payload each accepts): a short frame, a length
 * that disagrees with the bytes received, an unknown type or a payload
 * outside the type's bounds is an error, and an unexpected descriptor is
 * closed.
 */
#ifndef COMMON_IPC_H
#define COMMON_IPC_H

#include <sys/types.h>
#include <stdint.h>
#include "compat.h"

#define IPC_MAXPAYLOAD	(64 * 1024)

struct ipc_hdr {
	uint32_t	type;
	uint32_t	len;
};

struct ipc_type {
	uint32_t	 type;
	uint32_t	 minlen;
	uint32_t	 maxlen;
	int		 withfd;	/* may carry a descriptor */
	const char	*name;
};

struct ipc_msg {
	struct ipc_hdr	 hdr;
	int		 fd;		/* -1 when none */
	char		 data[IPC_MAXPAYLOAD];
};

int	ipc_pair(int[2]);
int	ipc_send(int, uint32_t, const void *, size_t, int);
int	ipc_recv(int, struct ipc_msg *, const struct ipc_type *);

#endif

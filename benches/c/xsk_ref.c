// SPDX-License-Identifier: MIT OR Apache-2.0
/*
 * xsk_ref: the C reference of the afxdp benchmarks, written against libxdp's xsk API
 * (<xdp/xsk.h>, Debian libxdp-dev 1.3.1) the way xdpsock does it.
 *
 *   xsk_ref rxdrop IFNAME [-d SECONDS] [-b BATCH] [--prog attached|libxdp] [-S] [--track]
 *                 [--coalesce USECS]
 *   xsk_ref l2fwd  IFNAME [-d SECONDS] [-b BATCH] [--prog attached|libxdp] [-S]
 *   xsk_ref txonly IFNAME --packet HEX [-d SECONDS] [-b BATCH] [-C MAXCOUNT]
 *   xsk_ref sink   IFNAME [-d SECONDS] [-S]
 *   xsk_ref ring   [-n DESCRIPTORS] [-b BATCH]
 *   xsk_ref pp-server IFNAME [-d SECONDS] [--busy-poll USECS]
 *   xsk_ref pp-client IFNAME --packet HEX -C COUNT [--busy-poll USECS]
 *
 * rxdrop: receive and drop; l2fwd: swap the MAC addresses and send back out of IFNAME;
 * txonly: send one template (written into every UMEM frame once) as fast as possible.
 * Each prints "ready" once set up, then one `key=value` line like rust/core/examples/rxdrop.rs:
 * packets, bytes, seconds, pps, cpu_ns_per_packet and the socket's XDP_STATISTICS counters.
 * Receivers count from their first packet for SECONDS and wait in poll() when the rx ring is
 * empty, so CPU time is work, not spinning. txonly sends for SECONDS, then drains completions
 * for at most 1 s: packets counts completed frames, seconds is the sending window.
 *
 * Which XDP program steers packets to the socket (--prog):
 *   attached (default): libxdp's program loading is inhibited (XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD)
 *     and the socket is inserted into the XSKMAP of the program already attached to IFNAME,
 *     found through its id (bpf_xdp_query_id -> prog info -> map ids). The benchmark harness
 *     attaches afxdp's built-in program there, so every AF_XDP receiver it compares runs behind
 *     the very same XDP program and only the user-space side differs.
 *   libxdp: libxdp loads its own default program (xsk_def_xdp_prog through the xdp-dispatcher),
 *     as a plain libxdp application would. With libxdp 1.3.1 on Linux 6.18 that works, but
 *     inside `ip netns exec` (no bpffs mounted) without the dispatcher: libxdp says so and
 *     attaches xsk_def_xdp_prog alone. The harness does not use it, because a different XDP
 *     program would change the kernel-side cost per packet and with it the offered load.
 *
 * rxdrop --coalesce USECS: afxdp's `recv(coalesce=)` in C: before each receive, fewer than
 * BATCH frames on the rx ring first let frames gather for USECS (nanosleep, which arriving
 * frames do not wake); then the loop goes on as above (poll() only when nothing is ready).
 *
 * rxdrop --track: the same loop doing afxdp's frame ownership bookkeeping in plain C, to price
 * it: a state byte per frame, checked and changed on every move (fill ring -> received batch ->
 * free stack -> fill ring), a batch array of (index, offset, len), and a LIFO free stack the
 * fill ring is refilled from; an address not on the fill ring is refused and counted.
 *
 * sink: attach a tiny XDP program (built here from 12 instructions, no compiler needed) that
 * counts every packet in a per-CPU array and drops it; once packets arrive, count until none
 * came for 0.5 s (at most SECONDS in all) and report the total. The harness uses it to measure
 * what a sender or a forwarder delivered.
 *
 * ring: no kernel. One producer and one consumer ring over heap memory, driven with libxdp's
 * inline xsk_ring_prod__reserve/submit and xsk_ring_cons__peek/release, BATCH descriptors at a
 * time; prints ns per descriptor, the twin of the criterion `ring` group (benches/benches/core.rs).
 *
 * pp-server / pp-client: the ping-pong of benches/e2e.py --pingpong, the C twin of
 * benches/workers.py pp-server / pp-client (same frame, same loop, same output): the client
 * sends one frame, waits up to 1 s for the echo and takes the round trip from before the send to
 * after the receive, COUNT times after 100 unmeasured; the server echoes every frame with the MAC
 * addresses swapped (up to 64 per receive, waits of 0.1 s) for SECONDS. The client prints
 * `impl=c-pp-softirq|c-pp-busy count= answered= p50_us= p99_us= cpu_us_per_ping=` (the CPU of
 * all its pings, warm-up included, over COUNT), as workers.py does. The syscalls are those of
 * afxdp's Socket (rust/core/src/socket.rs, rust/python/src/socket.rs wait): without busy polling
 * a send kicks the tx ring with a sendto when its need_wakeup flag is set, an empty rx ring is
 * waited for in poll(), and complete() makes a syscall only when frames still wait on the tx
 * ring; with --busy-poll USECS (SO_PREFER_BUSY_POLL, SO_BUSY_POLL=USECS, SO_BUSY_POLL_BUDGET=64,
 * the kernel's af_xdp.rst recipe) every receive starts with a recvfrom, every send and every
 * complete() makes a sendto, and a wait spins (recvfrom, then poll with timeout 0) for USECS
 * before it sleeps in poll() for the rest of its 0.1 s slice.
 *
 * Built by benches/cref.py (for e2e.py and ring_compare.py): cc -O2 -o xsk_ref xsk_ref.c -lxdp -lbpf
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>

#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define FRAME_COUNT 4096u
#define FRAME_SIZE 4096u
#define FILL_SIZE 4096u
#define COMP_SIZE 2048u
#define RX_SIZE 2048u
#define TX_SIZE 2048u

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "xsk_ref: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static double user_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
}

/* The user-space CPU time at the start of the measurement, for print_result's
 * user_ns_per_packet (the rest of cpu_ns_per_packet is the kernel's). */
static double user_start;

/* cpu_seconds(), noting user_start: where a receiver or sender starts counting. */
static double cpu_start(void)
{
	user_start = user_seconds();
	return cpu_seconds();
}

struct opts {
	const char *mode;
	const char *ifname;
	double seconds;
	__u32 batch;
	bool libxdp_prog;
	__u32 xdp_flags;
	unsigned char packet[FRAME_SIZE];
	size_t packet_len;
	unsigned long long max_count;
	unsigned long long ring_descs;
	bool track;
	int busy_poll; /* SO_BUSY_POLL microseconds, 0: no busy polling */
	long coalesce_us; /* rxdrop --coalesce, 0: off */
};

/* --track: afxdp's per-frame ownership bookkeeping (rust/core/src/umem.rs FrameTable), in C. */
enum { ST_FREE, ST_FILL, ST_USER };
static unsigned char frame_state[FRAME_COUNT];
static __u32 free_stack[FRAME_COUNT];
static __u32 free_top;
static struct { __u32 index, offset, len; } track_batch[1024];
static unsigned long long track_refused;

struct xsk {
	void *area;
	struct xsk_umem *umem;
	struct xsk_socket *sock;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	int fd;
	__u32 outstanding_tx;
};

/* The XSKMAP of the XDP program attached to ifindex, or -1 (errno-style code in *err). */
static int attached_xskmap(int ifindex, __u32 xdp_flags, int *err)
{
	__u32 prog_id = 0, map_ids[16] = {0};
	struct bpf_prog_info pinfo = {0};
	__u32 len = sizeof(pinfo);
	int prog_fd, ret;

	ret = bpf_xdp_query_id(ifindex, xdp_flags, &prog_id);
	if (ret || !prog_id) {
		*err = ret ? ret : -ENOENT;
		return -1;
	}
	prog_fd = bpf_prog_get_fd_by_id(prog_id);
	if (prog_fd < 0) {
		*err = -errno;
		return -1;
	}
	pinfo.nr_map_ids = 16;
	pinfo.map_ids = (__u64)(unsigned long)map_ids;
	ret = bpf_obj_get_info_by_fd(prog_fd, &pinfo, &len);
	close(prog_fd);
	if (ret) {
		*err = -errno;
		return -1;
	}
	for (__u32 i = 0; i < pinfo.nr_map_ids && i < 16; i++) {
		struct bpf_map_info minfo = {0};
		__u32 mlen = sizeof(minfo);
		int map_fd = bpf_map_get_fd_by_id(map_ids[i]);

		if (map_fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(map_fd, &minfo, &mlen) &&
		    minfo.type == BPF_MAP_TYPE_XSKMAP)
			return map_fd;
		close(map_fd);
	}
	*err = -ENOENT;
	return -1;
}

static void xsk_open(struct xsk *x, const struct opts *o, bool want_rx, bool want_tx)
{
	struct xsk_umem_config ucfg = {
		.fill_size = FILL_SIZE,
		.comp_size = COMP_SIZE,
		.frame_size = FRAME_SIZE,
		.frame_headroom = 0,
		.flags = 0,
	};
	struct xsk_socket_config scfg = {
		.rx_size = want_rx ? RX_SIZE : 0,
		.tx_size = want_tx ? TX_SIZE : 0,
		.libxdp_flags = (want_rx && o->libxdp_prog) ? 0 : XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.xdp_flags = o->xdp_flags,
		.bind_flags = XDP_USE_NEED_WAKEUP,
	};
	size_t size = (size_t)FRAME_COUNT * FRAME_SIZE;
	__u32 idx, n;
	int ret;

	memset(x, 0, sizeof(*x));
	x->area = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (x->area == MAP_FAILED)
		die("mmap(UMEM)", errno);
	/* A queue closed just before (by the previous benchmark run) is released by deferred
	 * kernel work, and bind fails with EBUSY meanwhile: start over for up to 1.5 s. */
	for (double give_up = now() + 1.5;;) {
		ret = xsk_umem__create(&x->umem, x->area, size, &x->fill, &x->comp, &ucfg);
		if (ret)
			die("xsk_umem__create", ret);
		ret = xsk_socket__create(&x->sock, o->ifname, 0, x->umem, want_rx ? &x->rx : NULL,
					 want_tx ? &x->tx : NULL, &scfg);
		if (ret != -EBUSY || now() > give_up)
			break;
		xsk_umem__delete(x->umem);
		usleep(2000);
	}
	if (ret)
		die(o->libxdp_prog ? "xsk_socket__create (with libxdp's program)" : "xsk_socket__create",
		    ret);
	x->fd = xsk_socket__fd(x->sock);
	if (!want_rx)
		return;
	/* Receive frames on the fill ring: all of them for rxdrop, half for l2fwd (the rest
	 * circulate through rx -> tx -> completion -> fill). */
	n = want_tx ? FRAME_COUNT / 2 : FRAME_COUNT;
	if (n > FILL_SIZE)
		n = FILL_SIZE;
	if (xsk_ring_prod__reserve(&x->fill, n, &idx) != n)
		die("fill ring reserve", ENOSPC);
	for (__u32 i = 0; i < n; i++) {
		*xsk_ring_prod__fill_addr(&x->fill, idx + i) = (__u64)i * FRAME_SIZE;
		frame_state[i] = ST_FILL;
	}
	for (__u32 i = FRAME_COUNT; i > n; i--)
		free_stack[free_top++] = i - 1;
	xsk_ring_prod__submit(&x->fill, n);
	if (!o->libxdp_prog) {
		int err = 0, map_fd = attached_xskmap(if_nametoindex(o->ifname), 0, &err);

		if (map_fd < 0)
			die("no XDP program with an XSKMAP attached to the interface "
			    "(attach one, e.g. afxdp.Program.attach, or use --prog libxdp)", err);
		ret = xsk_socket__update_xskmap(x->sock, map_fd);
		close(map_fd);
		if (ret)
			die("xsk_socket__update_xskmap", ret);
	}
}

static void print_result(const char *mode, struct xsk *x, unsigned long long packets,
			 unsigned long long bytes, double secs, double cpu)
{
	struct xdp_statistics st = {0};
	socklen_t len = sizeof(st);

	if (getsockopt(x->fd, SOL_XDP, XDP_STATISTICS, &st, &len))
		die("getsockopt(XDP_STATISTICS)", errno);
	double user = user_seconds() - user_start;

	printf("impl=c mode=%s packets=%llu bytes=%llu seconds=%.3f pps=%.0f cpu_ns_per_packet=%.1f "
	       "user_ns_per_packet=%.1f rx_dropped=%llu rx_ring_full=%llu fill_empty=%llu "
	       "tx_invalid=%llu refused=%llu\n",
	       mode, packets, bytes, secs, packets / secs, packets ? cpu * 1e9 / packets : 0.0,
	       packets ? user * 1e9 / packets : 0.0,
	       (unsigned long long)st.rx_dropped, (unsigned long long)st.rx_ring_full,
	       (unsigned long long)st.rx_fill_ring_empty_descs,
	       (unsigned long long)st.tx_invalid_descs, track_refused);
	fflush(stdout);
}

static void xsk_close(struct xsk *x)
{
	xsk_socket__delete(x->sock);
	xsk_umem__delete(x->umem);
	munmap(x->area, (size_t)FRAME_COUNT * FRAME_SIZE);
}

static void kick_tx(struct xsk *x)
{
	/* Copy mode (veth): the kernel transmits only inside sendto, which handles at most 32
	 * descriptors a call; EAGAIN/EBUSY/ENOBUFS mean "later". */
	if (sendto(x->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN &&
	    errno != EBUSY && errno != ENOBUFS && errno != ENETDOWN)
		die("sendto(tx wakeup)", errno);
}

/* Moves completed tx frames back to the fill ring (l2fwd) or just counts them (txonly). */
static __u32 complete_tx(struct xsk *x, bool refill, __u32 batch)
{
	__u32 idx_cq, idx_fq, n;

	if (!x->outstanding_tx)
		return 0;
	if (xsk_ring_prod__needs_wakeup(&x->tx))
		kick_tx(x);
	n = xsk_ring_cons__peek(&x->comp, batch, &idx_cq);
	if (!n)
		return 0;
	if (refill) {
		while (xsk_ring_prod__reserve(&x->fill, n, &idx_fq) != n) {
			if (xsk_ring_prod__needs_wakeup(&x->fill))
				recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		}
		for (__u32 i = 0; i < n; i++)
			*xsk_ring_prod__fill_addr(&x->fill, idx_fq + i) =
				*xsk_ring_cons__comp_addr(&x->comp, idx_cq + i);
		xsk_ring_prod__submit(&x->fill, n);
	}
	xsk_ring_cons__release(&x->comp, n);
	x->outstanding_tx -= n;
	return n;
}

static int run_rx(const struct opts *o, bool forward)
{
	struct pollfd pfd;
	struct xsk x;
	unsigned long long packets = 0, bytes = 0;
	double t0 = 0, c0 = 0, deadline;
	bool started = false;

	xsk_open(&x, o, true, forward);
	pfd.fd = x.fd;
	pfd.events = POLLIN;
	printf("ready\n");
	fflush(stdout);
	deadline = now() + o->seconds + 10;
	while (!stop && now() < deadline) {
		__u32 idx_rx, idx_out, n;

		if (forward)
			complete_tx(&x, true, o->batch);
		if (o->coalesce_us && xsk_cons_nb_avail(&x.rx, o->batch) < o->batch) {
			struct timespec ts = {0, o->coalesce_us * 1000};

			nanosleep(&ts, NULL);
		}
		n = xsk_ring_cons__peek(&x.rx, o->batch, &idx_rx);
		if (!n) {
			if (xsk_ring_prod__needs_wakeup(&x.fill))
				recvfrom(x.fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
			/* Idle: wait in poll. With frames in flight, wake soon to reclaim them. */
			poll(&pfd, 1, forward && x.outstanding_tx ? 1 : 100);
			continue;
		}
		if (!started) {
			started = true;
			t0 = now();
			c0 = cpu_start();
			deadline = t0 + o->seconds;
		}
		if (forward) {
			while (xsk_ring_prod__reserve(&x.tx, n, &idx_out) != n) {
				complete_tx(&x, true, o->batch);
				kick_tx(&x);
			}
			for (__u32 i = 0; i < n; i++) {
				const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x.rx, idx_rx + i);
				struct xdp_desc *t = xsk_ring_prod__tx_desc(&x.tx, idx_out + i);
				unsigned char *p = xsk_umem__get_data(x.area, d->addr);
				unsigned char mac[6];

				memcpy(mac, p, 6);
				memcpy(p, p + 6, 6);
				memcpy(p + 6, mac, 6);
				t->addr = d->addr;
				t->len = d->len;
				bytes += d->len;
			}
			xsk_ring_prod__submit(&x.tx, n);
			xsk_ring_cons__release(&x.rx, n);
			x.outstanding_tx += n;
			kick_tx(&x);
		} else if (o->track) {
			__u32 k = 0, got;

			/* receive: fill -> user, into the batch array */
			for (__u32 i = 0; i < n; i++) {
				const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x.rx, idx_rx + i);
				__u64 index = d->addr / FRAME_SIZE;

				if (index < FRAME_COUNT && frame_state[index] == ST_FILL) {
					frame_state[index] = ST_USER;
					track_batch[k].index = (__u32)index;
					track_batch[k].offset = (__u32)(d->addr % FRAME_SIZE);
					track_batch[k].len = d->len;
					k++;
				} else {
					track_refused++;
				}
			}
			xsk_ring_cons__release(&x.rx, n);
			for (__u32 i = 0; i < k; i++)
				bytes += track_batch[i].len;
			/* release the batch: user -> free stack */
			for (__u32 i = 0; i < k; i++) {
				__u32 index = track_batch[i].index;

				if (frame_state[index] == ST_USER) {
					frame_state[index] = ST_FREE;
					free_stack[free_top++] = index;
				}
			}
			/* refill: free stack -> fill ring */
			got = xsk_ring_prod__reserve(&x.fill, free_top < n ? free_top : n, &idx_out);
			for (__u32 i = 0; i < got; i++) {
				__u32 index = free_stack[--free_top];

				frame_state[index] = ST_FILL;
				*xsk_ring_prod__fill_addr(&x.fill, idx_out + i) = (__u64)index * FRAME_SIZE;
			}
			xsk_ring_prod__submit(&x.fill, got);
			packets += k;
			continue;
		} else {
			while (xsk_ring_prod__reserve(&x.fill, n, &idx_out) != n) {
				if (xsk_ring_prod__needs_wakeup(&x.fill))
					recvfrom(x.fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
			}
			for (__u32 i = 0; i < n; i++) {
				const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x.rx, idx_rx + i);

				bytes += d->len;
				*xsk_ring_prod__fill_addr(&x.fill, idx_out + i) =
					d->addr & ~(__u64)(FRAME_SIZE - 1);
			}
			xsk_ring_prod__submit(&x.fill, n);
			xsk_ring_cons__release(&x.rx, n);
		}
		packets += n;
	}
	if (!started) {
		fprintf(stderr, "xsk_ref: no packet received\n");
		return 1;
	}
	print_result(forward ? "l2fwd" : "rxdrop", &x, packets, bytes, now() - t0,
		     cpu_seconds() - c0);
	xsk_close(&x);
	return 0;
}

static int run_txonly(const struct opts *o)
{
	struct pollfd pfd;
	struct xsk x;
	unsigned long long sent = 0, completed = 0;
	double t0, c0, deadline;

	if (!o->packet_len)
		die("txonly needs --packet HEX", EINVAL);
	xsk_open(&x, o, false, true);
	for (__u32 i = 0; i < FRAME_COUNT; i++)
		memcpy((char *)x.area + (size_t)i * FRAME_SIZE, o->packet, o->packet_len);
	pfd.fd = x.fd;
	pfd.events = POLLOUT;
	printf("ready\n");
	fflush(stdout);
	t0 = now();
	c0 = cpu_start();
	deadline = t0 + o->seconds;
	__u32 next = 0; /* frames are used round robin; a frame is reused only after completion */
	while (!stop && now() < deadline && sent < o->max_count) {
		__u32 idx, n = o->batch;

		if (FRAME_COUNT - x.outstanding_tx < n || xsk_ring_prod__reserve(&x.tx, n, &idx) != n) {
			completed += complete_tx(&x, false, TX_SIZE);
			kick_tx(&x);
			continue;
		}
		for (__u32 i = 0; i < n; i++) {
			struct xdp_desc *d = xsk_ring_prod__tx_desc(&x.tx, idx + i);

			d->addr = (__u64)next * FRAME_SIZE;
			d->len = o->packet_len;
			next = (next + 1) % FRAME_COUNT;
		}
		xsk_ring_prod__submit(&x.tx, n);
		x.outstanding_tx += n;
		sent += n;
		kick_tx(&x);
		completed += complete_tx(&x, false, TX_SIZE);
	}
	double window = now() - t0;

	/* Drain: completions arrive asynchronously, bounded by a deadline. */
	deadline = now() + 1.0;
	while (x.outstanding_tx && now() < deadline) {
		completed += complete_tx(&x, false, TX_SIZE);
		poll(&pfd, 1, 1);
	}
	/* pps over the sending window; the CPU time includes the drain. */
	print_result("txonly", &x, completed, completed * o->packet_len, window,
		     cpu_seconds() - c0);
	xsk_close(&x);
	return 0;
}

/* A hand-assembled XDP program: count the packet in PERCPU_ARRAY[0], return XDP_DROP. */
static int load_sink_prog(int map_fd)
{
#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
	struct bpf_insn prog[] = {
		INSN(BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, 0),          /* *(u32 *)(r10-4) = 0 */
		INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0), /* r2 = r10 */
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4),         /* r2 += -4 */
		INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd), /* r1 = map */
		INSN(0, 0, 0, 0, 0),
		INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
		INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 3, 0),            /* if !r0 goto out */
		INSN(BPF_LDX | BPF_MEM | BPF_DW, BPF_REG_1, BPF_REG_0, 0, 0),   /* r1 = *(u64 *)r0 */
		INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_1, 0, 0, 1),          /* r1 += 1 */
		INSN(BPF_STX | BPF_MEM | BPF_DW, BPF_REG_0, BPF_REG_1, 0, 0),   /* *(u64 *)r0 = r1 */
		INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_DROP),   /* out: r0 = DROP */
		INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
#undef INSN
	char log[4096] = "";
	LIBBPF_OPTS(bpf_prog_load_opts, lo, .log_buf = log, .log_size = sizeof(log), .log_level = 1);
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "xsk_ref_sink", "Dual MIT/GPL", prog,
			       sizeof(prog) / sizeof(prog[0]), &lo);

	if (fd < 0) {
		fprintf(stderr, "%s\n", log);
		die("bpf_prog_load(sink)", errno);
	}
	return fd;
}

static unsigned long long sink_count(int map_fd, int ncpus)
{
	__u64 *values = calloc(ncpus, sizeof(__u64));
	__u32 key = 0;
	unsigned long long sum = 0;

	if (!values || bpf_map_lookup_elem(map_fd, &key, values))
		die("bpf_map_lookup_elem(sink counter)", errno);
	for (int i = 0; i < ncpus; i++)
		sum += values[i];
	free(values);
	return sum;
}

static int run_sink(const struct opts *o)
{
	int ncpus = libbpf_num_possible_cpus();
	int ifindex = if_nametoindex(o->ifname);
	int map_fd, prog_fd, link_fd;
	unsigned long long first, last;
	double t0, t_last, deadline;
	LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = o->xdp_flags ? o->xdp_flags : XDP_FLAGS_DRV_MODE);

	if (!ifindex)
		die(o->ifname, errno);
	map_fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "xsk_ref_sink", 4, 8, 1, NULL);
	if (map_fd < 0)
		die("bpf_map_create(sink counter)", errno);
	prog_fd = load_sink_prog(map_fd);
	/* A BPF link: the program goes away with this process, however it ends. */
	link_fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lo);
	if (link_fd < 0)
		die("bpf_link_create(XDP sink)", errno);
	printf("ready\n");
	fflush(stdout);
	/* Count until the traffic stops: from the first packet until none came for 0.5 s. */
	deadline = now() + o->seconds;
	while (!stop && (first = sink_count(map_fd, ncpus)) == 0 && now() < deadline)
		usleep(1000);
	if (!first) {
		fprintf(stderr, "xsk_ref: sink counted no packet\n");
		return 1;
	}
	t0 = t_last = now();
	last = first;
	while (!stop && now() < deadline && now() - t_last < 0.5) {
		unsigned long long n;

		usleep(2000);
		n = sink_count(map_fd, ncpus);
		if (n != last) {
			last = n;
			t_last = now();
		}
	}
	double secs = t_last - t0;

	printf("impl=c mode=sink packets=%llu seconds=%.3f pps=%.0f\n", last, secs,
	       secs > 0 ? last / secs : 0.0);
	fflush(stdout);
	close(link_fd);
	close(prog_fd);
	close(map_fd);
	return 0;
}

/* The ring micro-benchmark: produce BATCH descriptors, consume them, repeat. */
static int run_ring(const struct opts *o)
{
	const __u32 size = 2048;
	struct xdp_desc *descs = aligned_alloc(64, size * sizeof(*descs));
	__u32 *idx_words = aligned_alloc(64, 3 * 64); /* producer, consumer, flags: own lines */
	struct xsk_ring_prod p = {0};
	struct xsk_ring_cons c = {0};
	unsigned long long rounds = o->ring_descs / o->batch, sum = 0;
	double t0, secs;

	if (!descs || !idx_words)
		die("aligned_alloc", ENOMEM);
	memset(idx_words, 0, 3 * 64);
	__u32 *prod = &idx_words[0], *cons = &idx_words[16], *flags = &idx_words[32];

	p.mask = c.mask = size - 1;
	p.size = c.size = size;
	p.producer = c.producer = prod;
	p.consumer = c.consumer = cons;
	p.flags = c.flags = flags;
	p.ring = c.ring = descs;
	p.cached_cons = size; /* libxdp's producer convention: consumer + size */

	t0 = now();
	for (unsigned long long r = 0; r < rounds; r++) {
		__u32 idx;

		if (xsk_ring_prod__reserve(&p, o->batch, &idx) != o->batch)
			die("ring reserve", ENOSPC);
		for (__u32 i = 0; i < o->batch; i++) {
			struct xdp_desc *d = xsk_ring_prod__tx_desc(&p, idx + i);

			d->addr = (__u64)i * 4096;
			d->len = 60;
			d->options = 0;
		}
		xsk_ring_prod__submit(&p, o->batch);
		__u32 n = xsk_ring_cons__peek(&c, o->batch, &idx);

		for (__u32 i = 0; i < n; i++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&c, idx + i);

			sum += d->addr + d->len;
		}
		xsk_ring_cons__release(&c, n);
	}
	secs = now() - t0;
	unsigned long long total = rounds * o->batch;

	printf("impl=c mode=ring descriptors=%llu batch=%u seconds=%.3f ns_per_desc=%.3f "
	       "ns_per_batch=%.1f checksum=%llu\n",
	       total, o->batch, secs, secs * 1e9 / total, secs * 1e9 / rounds, sum);
	free(descs);
	free(idx_words);
	return 0;
}

/* --- ping-pong (benches/e2e.py --pingpong), the twin of workers.py pp-server / pp-client --- */

#define PP_WARMUP 100ull
/* afxdp's wait slice (rust/python/src/convert.rs WAIT_SLICE): a wait polls in steps this long. */
#define PP_SLICE 0.1

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

static void set_sockopt_int(int fd, int name, int value, const char *what)
{
	if (setsockopt(fd, SOL_SOCKET, name, &value, sizeof(value)))
		die(what, errno);
}

/* Preferred busy polling: the three options in xdpsock's order, as afxdp's BusyPoll::apply. */
static void pp_busy_poll(const struct xsk *x, int usecs)
{
	set_sockopt_int(x->fd, SO_PREFER_BUSY_POLL, 1, "setsockopt(SO_PREFER_BUSY_POLL)");
	set_sockopt_int(x->fd, SO_BUSY_POLL, usecs, "setsockopt(SO_BUSY_POLL)");
	set_sockopt_int(x->fd, SO_BUSY_POLL_BUDGET, 64, "setsockopt(SO_BUSY_POLL_BUDGET)");
}

static void wakeup_rx(const struct xsk *x)
{
	/* Errors only mean "nothing polled now"; the rings are read either way. */
	recvfrom(x->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
}

/* Descriptors on the tx ring the kernel has not taken yet. */
static __u32 tx_pending(const struct xsk *x)
{
	return *x->tx.producer - __atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE);
}

/* afxdp's Socket::kick_tx: without busy polling a sendto only when descriptors wait on the tx
 * ring and it asks for a wakeup; with busy polling at least one sendto, whatever the ring holds.
 * At most pending / 16 + 4 calls, until the ring is empty. */
static void pp_kick(struct xsk *x, bool busy)
{
	__u32 pending = tx_pending(x), rounds;

	if (!busy && (!pending || !xsk_ring_prod__needs_wakeup(&x->tx)))
		return;
	rounds = pending / 16 + 4;
	for (;;) {
		rounds--;
		kick_tx(x);
		pending = tx_pending(x);
		if (!pending || !rounds)
			return;
	}
}

/* afxdp's Socket::complete: kick, then reclaim every completed frame, onto the fill ring
 * (the server's frames, as l2fwd does) or onto the free stack (the client's tx frames). */
static void pp_complete(struct xsk *x, bool busy, bool to_fill)
{
	__u32 idx_cq, idx_fq, n;

	pp_kick(x, busy);
	n = xsk_ring_cons__peek(&x->comp, COMP_SIZE, &idx_cq);
	if (!n)
		return;
	if (to_fill) {
		while (xsk_ring_prod__reserve(&x->fill, n, &idx_fq) != n)
			wakeup_rx(x);
		for (__u32 i = 0; i < n; i++)
			*xsk_ring_prod__fill_addr(&x->fill, idx_fq + i) =
				*xsk_ring_cons__comp_addr(&x->comp, idx_cq + i);
		xsk_ring_prod__submit(&x->fill, n);
		if (xsk_ring_prod__needs_wakeup(&x->fill))
			wakeup_rx(x);
	} else {
		for (__u32 i = 0; i < n; i++)
			free_stack[free_top++] =
				(__u32)(*xsk_ring_cons__comp_addr(&x->comp, idx_cq + i) / FRAME_SIZE);
	}
	xsk_ring_cons__release(&x->comp, n);
	x->outstanding_tx -= n;
}

/* What is on the rx ring, up to max; with busy polling after a recvfrom (Socket::recv). */
static __u32 pp_take(struct xsk *x, __u32 max, bool busy, __u32 *idx)
{
	if (busy)
		wakeup_rx(x);
	return xsk_ring_cons__peek(&x->rx, max, idx);
}

/* Socket.recv(max, timeout) of the Python binding: take; if nothing came, wait up to timeout in
 * slices of PP_SLICE (with busy polling each slice first spins busy_usecs, a recvfrom and a
 * zero-timeout poll again and again, then sleeps in poll for the rest), then take again. */
static __u32 pp_recv(struct xsk *x, __u32 max, double timeout, int busy_usecs, __u32 *idx)
{
	struct pollfd pfd = {.fd = x->fd, .events = POLLIN};
	double deadline;
	__u32 n = pp_take(x, max, busy_usecs > 0, idx);

	if (n)
		return n;
	deadline = now() + timeout;
	for (;;) {
		double slice = deadline - now();
		int ready = 0;

		if (slice > PP_SLICE)
			slice = PP_SLICE;
		if (slice < 0)
			slice = 0;
		if (busy_usecs > 0) {
			double spin = busy_usecs / 1e6, start = now();

			if (spin > slice)
				spin = slice;
			for (;;) {
				wakeup_rx(x);
				ready = poll(&pfd, 1, 0);
				if (ready != 0 || now() - start >= spin)
					break;
			}
			slice -= spin;
		}
		if (ready == 0)
			ready = poll(&pfd, 1, (int)(slice * 1e3));
		if (ready > 0 || stop || now() >= deadline)
			break;
	}
	return pp_take(x, max, busy_usecs > 0, idx);
}

static int cmp_u64(const void *a, const void *b)
{
	__u64 x = *(const __u64 *)a, y = *(const __u64 *)b;

	return x < y ? -1 : x > y;
}

/* Echo every frame back with the MAC addresses swapped until SECONDS passed. */
static int run_pp_server(const struct opts *o)
{
	bool busy = o->busy_poll > 0;
	struct xsk x;
	double deadline;

	xsk_open(&x, o, true, true);
	if (busy)
		pp_busy_poll(&x, o->busy_poll);
	printf("ready\n");
	fflush(stdout);
	deadline = now() + o->seconds;
	while (!stop && now() < deadline) {
		__u32 idx_rx, idx_tx, n = pp_recv(&x, 64, PP_SLICE, o->busy_poll, &idx_rx);

		if (n) {
			while (xsk_ring_prod__reserve(&x.tx, n, &idx_tx) != n)
				pp_complete(&x, busy, true);
			for (__u32 i = 0; i < n; i++) {
				const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x.rx, idx_rx + i);
				struct xdp_desc *t = xsk_ring_prod__tx_desc(&x.tx, idx_tx + i);
				unsigned char *p = xsk_umem__get_data(x.area, d->addr);
				unsigned char mac[6];

				memcpy(mac, p, 6);
				memcpy(p, p + 6, 6);
				memcpy(p + 6, mac, 6);
				t->addr = d->addr;
				t->len = d->len;
				t->options = 0;
			}
			xsk_ring_prod__submit(&x.tx, n);
			xsk_ring_cons__release(&x.rx, n);
			x.outstanding_tx += n;
			pp_kick(&x, busy);
		}
		pp_complete(&x, busy, true);
	}
	xsk_close(&x);
	return 0;
}

/* COUNT pings of one frame each (after 100 unmeasured), each waited for (1 s at most) before
 * the next; the round trip runs from before the send to after the receive. */
static int run_pp_client(const struct opts *o)
{
	unsigned long long count = o->max_count, answered = 0;
	bool busy = o->busy_poll > 0;
	struct xsk x;
	__u64 *rtts, p50, p99;
	double c0, cpu;

	if (!o->packet_len)
		die("pp-client needs --packet HEX", EINVAL);
	if (count < 1 || count > 100000000ull)
		die("pp-client needs -C COUNT, 1 to 100000000", EINVAL);
	rtts = malloc(count * sizeof(*rtts));
	if (!rtts)
		die("malloc", ENOMEM);
	xsk_open(&x, o, true, true);
	if (busy)
		pp_busy_poll(&x, o->busy_poll);
	printf("ready\n");
	fflush(stdout);
	c0 = cpu_seconds();
	for (unsigned long long i = 0; i < PP_WARMUP + count && !stop; i++) {
		__u32 idx, idx_fq, n, frame;
		__u64 t0, t1;

		if (!free_top) /* Socket.alloc: reclaim completed frames when none is free */
			pp_complete(&x, busy, false);
		if (!free_top)
			die("pp-client: no free frame", ENOBUFS);
		frame = free_stack[--free_top];
		memcpy((char *)x.area + (size_t)frame * FRAME_SIZE, o->packet, o->packet_len);
		t0 = now_ns();
		while (xsk_ring_prod__reserve(&x.tx, 1, &idx) != 1)
			pp_complete(&x, busy, false);
		xsk_ring_prod__tx_desc(&x.tx, idx)->addr = (__u64)frame * FRAME_SIZE;
		xsk_ring_prod__tx_desc(&x.tx, idx)->len = o->packet_len;
		xsk_ring_prod__tx_desc(&x.tx, idx)->options = 0;
		xsk_ring_prod__submit(&x.tx, 1);
		x.outstanding_tx++;
		pp_kick(&x, busy);
		n = pp_recv(&x, 1, 1.0, o->busy_poll, &idx);
		if (n) { /* the received frame goes back to the fill ring, as Socket.recv's autofill */
			while (xsk_ring_prod__reserve(&x.fill, n, &idx_fq) != n)
				wakeup_rx(&x);
			*xsk_ring_prod__fill_addr(&x.fill, idx_fq) =
				xsk_ring_cons__rx_desc(&x.rx, idx)->addr & ~(__u64)(FRAME_SIZE - 1);
			xsk_ring_prod__submit(&x.fill, n);
			xsk_ring_cons__release(&x.rx, n);
			if (xsk_ring_prod__needs_wakeup(&x.fill))
				wakeup_rx(&x);
		}
		t1 = now_ns();
		pp_complete(&x, busy, false);
		if (n && i >= PP_WARMUP)
			rtts[answered++] = t1 - t0;
	}
	cpu = cpu_seconds() - c0;
	xsk_close(&x);
	if (!answered) {
		fprintf(stderr, "xsk_ref: no echo came back\n");
		return 1;
	}
	qsort(rtts, answered, sizeof(*rtts), cmp_u64);
	p50 = rtts[answered / 2];
	p99 = rtts[answered * 99 / 100 < answered - 1 ? answered * 99 / 100 : answered - 1];
	printf("impl=%s count=%llu answered=%llu p50_us=%.2f p99_us=%.2f cpu_us_per_ping=%.2f\n",
	       busy ? "c-pp-busy" : "c-pp-softirq", count, answered, p50 / 1e3, p99 / 1e3,
	       cpu / count * 1e6);
	fflush(stdout);
	free(rtts);
	return 0;
}

static void parse_hex(struct opts *o, const char *hex)
{
	size_t n = strlen(hex);

	if (n % 2 || n / 2 > sizeof(o->packet) || n < 28)
		die("--packet: an even number of hex digits, 14 to 4096 bytes", EINVAL);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int b;

		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			die("--packet: not hex", EINVAL);
		o->packet[i] = b;
	}
	o->packet_len = n / 2;
}

int main(int argc, char **argv)
{
	static struct opts o = {
		.seconds = 5.0, .batch = 64, .max_count = 1ull << 40, .ring_descs = 200000000ull,
	};
	static const struct option longopts[] = {
		{"duration", required_argument, NULL, 'd'},
		{"batch", required_argument, NULL, 'b'},
		{"prog", required_argument, NULL, 'P'},
		{"generic", no_argument, NULL, 'S'},
		{"packet", required_argument, NULL, 'p'},
		{"count", required_argument, NULL, 'C'},
		{"descriptors", required_argument, NULL, 'n'},
		{"track", no_argument, NULL, 'T'},
		{"busy-poll", required_argument, NULL, 'B'},
		{"coalesce", required_argument, NULL, 'c'},
		{0},
	};
	int opt;

	if (argc < 2) {
		fprintf(stderr, "usage: xsk_ref rxdrop|l2fwd|txonly|sink|pp-server|pp-client IFNAME "
				"[options] | xsk_ref ring [-n N]\n");
		return 2;
	}
	o.mode = argv[1];
	optind = 2;
	if (strcmp(o.mode, "ring") != 0) {
		if (argc < 3) {
			fprintf(stderr, "xsk_ref: %s needs IFNAME\n", o.mode);
			return 2;
		}
		o.ifname = argv[2];
		optind = 3;
	}
	while ((opt = getopt_long(argc, argv, "d:b:P:Sp:C:n:TB:c:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd': o.seconds = atof(optarg); break;
		case 'b': o.batch = (__u32)atoi(optarg); break;
		case 'P':
			if (!strcmp(optarg, "libxdp"))
				o.libxdp_prog = true;
			else if (strcmp(optarg, "attached"))
				die("--prog: attached or libxdp", EINVAL);
			break;
		case 'S': o.xdp_flags = XDP_FLAGS_SKB_MODE; break;
		case 'p': parse_hex(&o, optarg); break;
		case 'C': o.max_count = strtoull(optarg, NULL, 10); break;
		case 'n': o.ring_descs = strtoull(optarg, NULL, 10); break;
		case 'T': o.track = true; break;
		case 'c': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 999999)
				die("--coalesce: microseconds, 1 to 999999", EINVAL);
			o.coalesce_us = v;
			break;
		}
		case 'B': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < 1 || v > 0x7fffffffL)
				die("--busy-poll: microseconds, 1 to 2147483647", EINVAL);
			o.busy_poll = (int)v;
			break;
		}
		default: return 2;
		}
	}
	if (o.batch < 1 || o.batch > 1024)
		die("--batch: 1 to 1024", EINVAL);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (!strcmp(o.mode, "rxdrop"))
		return run_rx(&o, false);
	if (!strcmp(o.mode, "l2fwd"))
		return run_rx(&o, true);
	if (!strcmp(o.mode, "txonly"))
		return run_txonly(&o);
	if (!strcmp(o.mode, "sink"))
		return run_sink(&o);
	if (!strcmp(o.mode, "ring"))
		return run_ring(&o);
	if (!strcmp(o.mode, "pp-server"))
		return run_pp_server(&o);
	if (!strcmp(o.mode, "pp-client"))
		return run_pp_client(&o);
	fprintf(stderr, "xsk_ref: unknown mode %s\n", o.mode);
	return 2;
}

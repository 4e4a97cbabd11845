/* SPDX-License-Identifier: MIT */
/*
 * metrics_http.h - a tiny non-blocking HTTP/1.0 server for GET /metrics,
 * on TCP (ADDR:PORT, [ADDR6]:PORT) or a unix socket (unix:PATH).
 *
 * It hands its owner ONE file descriptor (an epoll instance of its own that
 * holds the listening socket and the open connections) to add to an event
 * loop, and one call to make when it is readable. Nothing in it blocks: a
 * slow client is served as its socket drains, and a full table of
 * connections closes the oldest. The body comes from a render callback, so
 * the server knows nothing of counters (metrics_render.h does).
 */
#ifndef LD_METRICS_HTTP_H
#define LD_METRICS_HTTP_H

#include <stddef.h>

#include "metrics_render.h"

struct ld_metrics_http;

/* Appends the response body (the text format) to @out. */
typedef void (*ld_metrics_render_fn)(void *ctx, struct ld_buf *out);

/**
 * ld_metrics_http_open() - listen on @addr
 * @addr: "127.0.0.1:9464", "[::1]:9464" or "unix:/run/luadivert/metrics.sock"
 * @render: called once per GET /metrics
 * @ctx: passed to @render
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: the server, or NULL.
 */
struct ld_metrics_http *ld_metrics_http_open(const char *addr, ld_metrics_render_fn render,
					     void *ctx, char *err, size_t errlen);

/**
 * ld_metrics_http_adopt() - serve on a listening socket made elsewhere
 * (the supervisor makes it once, before forking workers: docs/process.md)
 * @addr: the address it listens on, for messages
 * @lfd: from ld_metrics_listen(), or -1 to open @addr here
 * @render: writes the page
 * @ctx: for @render
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * ld_metrics_http_close() closes this process's copy of @lfd and unlinks
 * no socket file.
 * Return: the server, or NULL.
 */
struct ld_metrics_http *ld_metrics_http_adopt(const char *addr, int lfd,
					      ld_metrics_render_fn render, void *ctx,
					      char *err, size_t errlen);

/**
 * ld_metrics_listen() - the listening socket of --metrics ADDR
 * @addr: 127.0.0.1:9464, [::1]:9464 or unix:PATH
 * @upath: receives the unix socket's path ("" for TCP): the caller unlinks it
 * @ulen: size of @upath
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: the socket (non-blocking, close-on-exec), or -1.
 */
int ld_metrics_listen(const char *addr, char *upath, size_t ulen, char *err, size_t errlen);

/**
 * ld_metrics_http_fd() - the descriptor to watch for EPOLLIN
 * @h: server
 *
 * Return: an epoll descriptor, readable when the server has work.
 */
int ld_metrics_http_fd(const struct ld_metrics_http *h);

/**
 * ld_metrics_http_handle() - accept, read requests, write responses; never blocks
 * @h: server
 */
void ld_metrics_http_handle(struct ld_metrics_http *h);

/**
 * ld_metrics_http_close() - close every connection and the socket (unlinks a unix path)
 * @h: server, may be NULL
 */
void ld_metrics_http_close(struct ld_metrics_http *h);

/**
 * ld_metrics_connect() - a blocking client connection to @addr (for `luadivert stats`)
 * @addr: as for ld_metrics_http_open()
 * @err: receives the reason on failure
 * @errlen: size of @err
 *
 * Return: a connected socket, or -1.
 */
int ld_metrics_connect(const char *addr, char *err, size_t errlen);

#endif /* LD_METRICS_HTTP_H */

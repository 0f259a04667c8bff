/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for the modules that build containerd's protobuf messages
 * themselves (client.c, and pull.c for the RPCs only pulling uses): the
 * label maps and a unary call whose error names the RPC.
 */
#pragma once

#include <protobuf-c/protobuf-c.h>

#include "backend/containerd/client.h"

/* The map<string,string> entries of every containerd message share this
 * layout; only the descriptor differs. */
typedef struct kv_entry {
        ProtobufCMessage base;
        char *key;
        char *value;
} kv_entry;

typedef struct kv_list {
        kv_entry *storage;
        kv_entry **ptrs;
        size_t n;
} kv_list;

void tr__ctrd_kv_list_done(kv_list *l);
/* From "k", "v", ..., NULL; borrows the strings. */
int tr__ctrd_kv_list_build(const ProtobufCMessageDescriptor *d, const char *const *labels, kv_list *ret);

/* tr__grpc_unary with the error's operation relabelled as `op`. */
int tr__ctrd_unary(const tr__ctrd_ctx *cx, const char *op, const char *path, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **ret_resp, tr_error **ret_err);

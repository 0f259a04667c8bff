/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for the modules that build containerd's protobuf messages
 * themselves (client.c, client_objects.c, and pull.c for the RPCs only
 * pulling uses): the label maps, a unary call whose error names the RPC,
 * the out-of-memory error, and the list results.
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

/* protobuf-c never writes through the char * fields of a message it packs:
 * requests borrow const strings through this cast. */
#define UNCONST(s) ((char *) (s))

/* TR_E_INTERNAL "out of memory" for `op`, errno ENOMEM; returns -ENOMEM. */
int tr__ctrd_oom(tr_error **ret_err, const char *op);
/* Append an item (its id and its labels, copied) to a list result. */
int tr__ctrd_items_push(tr__ctrd_items *l, const char *id, kv_entry **labels, size_t n_labels);

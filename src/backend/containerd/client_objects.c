/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Typed wrappers over containerd's services for the objects a sandbox holds
 * and its teardown removes: containers, tasks and leases (see client.h;
 * the conventions are client.c's: requests built on the stack from
 * borrowed strings, responses copied into plain C values and freed here).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend/containerd/client.h"
#include "backend/containerd/client_pb.h"
#include "ctrd_services_containers_v1_containers.pb-c.h"
#include "ctrd_services_leases_v1_leases.pb-c.h"
#include "ctrd_services_tasks_v1_tasks.pb-c.h"
#include "util/macros.h"
#include "util/strv.h"

#define SVC_CONTAINERS "/containerd.services.containers.v1.Containers/"
#define SVC_TASKS      "/containerd.services.tasks.v1.Tasks/"
#define SVC_LEASES     "/containerd.services.leases.v1.Leases/"

/* ---- containers ------------------------------------------------------------ */

int tr__ctrd_container_create(const tr__ctrd_ctx *cx, const tr__ctrd_container *ct, tr_error **ret_err) {
        Containerd__Services__Containers__V1__Container c = CONTAINERD__SERVICES__CONTAINERS__V1__CONTAINER__INIT;
        Containerd__Services__Containers__V1__Container__Runtime rt =
                CONTAINERD__SERVICES__CONTAINERS__V1__CONTAINER__RUNTIME__INIT;
        Google__Protobuf__Any spec = GOOGLE__PROTOBUF__ANY__INIT;
        _cleanup_(tr__ctrd_kv_list_done) kv_list kv = { 0 };
        if (tr__ctrd_kv_list_build(&containerd__services__containers__v1__container__labels_entry__descriptor,
                                   ct->labels, &kv) < 0)
                return tr__ctrd_oom(ret_err, "container.create");
        rt.name = UNCONST(ct->runtime);
        spec.type_url = UNCONST(TR_CTRD_SPEC_TYPE_URL);
        spec.value.data = (uint8_t *) UNCONST(ct->spec_json);
        spec.value.len = strlen(ct->spec_json);
        c.id = UNCONST(ct->id);
        c.image = UNCONST(ct->image ? ct->image : "");
        c.runtime = &rt;
        c.spec = &spec;
        c.snapshotter = UNCONST(ct->snapshotter ? ct->snapshotter : "");
        c.snapshot_key = UNCONST(ct->snapshot_key ? ct->snapshot_key : "");
        c.n_labels = kv.n;
        c.labels = (void *) kv.ptrs;
        Containerd__Services__Containers__V1__CreateContainerRequest req =
                CONTAINERD__SERVICES__CONTAINERS__V1__CREATE_CONTAINER_REQUEST__INIT;
        req.container = &c;
        return tr__ctrd_unary(cx, "container.create", SVC_CONTAINERS "Create", &req.base, NULL, NULL, ret_err);
}

int tr__ctrd_container_delete(const tr__ctrd_ctx *cx, const char *id, tr_error **ret_err) {
        Containerd__Services__Containers__V1__DeleteContainerRequest req =
                CONTAINERD__SERVICES__CONTAINERS__V1__DELETE_CONTAINER_REQUEST__INIT;
        req.id = UNCONST(id);
        return tr__ctrd_unary(cx, "container.delete", SVC_CONTAINERS "Delete", &req.base, NULL, NULL, ret_err);
}

int tr__ctrd_container_list(const tr__ctrd_ctx *cx, const char *filter, tr__ctrd_items *ret, tr_error **ret_err) {
        Containerd__Services__Containers__V1__ListContainersRequest req =
                CONTAINERD__SERVICES__CONTAINERS__V1__LIST_CONTAINERS_REQUEST__INIT;
        char *filters[1] = { UNCONST(filter) };
        req.n_filters = filter ? 1 : 0;
        req.filters = filters;
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(cx, "container.list", SVC_CONTAINERS "List", &req.base,
                               &containerd__services__containers__v1__list_containers_response__descriptor, &resp,
                               ret_err);
        if (r < 0)
                return r;
        Containerd__Services__Containers__V1__ListContainersResponse *lr = (void *) resp;
        tr__ctrd_items l = { 0 };
        for (size_t i = 0; i < lr->n_containers && r >= 0; i++)
                r = tr__ctrd_items_push(&l, lr->containers[i]->id, (kv_entry **) lr->containers[i]->labels,
                                        lr->containers[i]->n_labels);
        protobuf_c_message_free_unpacked(resp, NULL);
        if (r < 0) {
                tr__ctrd_items_done(&l);
                return tr__ctrd_oom(ret_err, "container.list");
        }
        *ret = l;
        return 0;
}

/* ---- tasks ------------------------------------------------------------ */

int tr__ctrd_task_create(const tr__ctrd_ctx *cx, const char *id, const tr__ctrd_mounts *rootfs, const char *stdin_path,
                         const char *stdout_path, const char *stderr_path, uint32_t *ret_pid, tr_error **ret_err) {
        size_t n = rootfs ? rootfs->n : 0;
        _cleanup_free_ Containerd__Types__Mount *mounts = calloc(n ? n : 1, sizeof *mounts);
        _cleanup_free_ Containerd__Types__Mount **ptrs = calloc(n ? n : 1, sizeof *ptrs);
        if (!mounts || !ptrs)
                return tr__ctrd_oom(ret_err, "task.create");
        for (size_t i = 0; i < n; i++) {
                containerd__types__mount__init(&mounts[i]);
                mounts[i].type = rootfs->items[i].type;
                mounts[i].source = rootfs->items[i].source;
                mounts[i].n_options = tr__strv_len(rootfs->items[i].options);
                mounts[i].options = rootfs->items[i].options;
                ptrs[i] = &mounts[i];
        }
        Containerd__Services__Tasks__V1__CreateTaskRequest req =
                CONTAINERD__SERVICES__TASKS__V1__CREATE_TASK_REQUEST__INIT;
        req.container_id = UNCONST(id);
        req.n_rootfs = n;
        req.rootfs = ptrs;
        req.stdin = UNCONST(stdin_path ? stdin_path : "");
        req.stdout = UNCONST(stdout_path ? stdout_path : "");
        req.stderr = UNCONST(stderr_path ? stderr_path : "");
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(cx, "task.create", SVC_TASKS "Create", &req.base,
                               &containerd__services__tasks__v1__create_task_response__descriptor, &resp, ret_err);
        if (r < 0)
                return r;
        if (ret_pid)
                *ret_pid = ((Containerd__Services__Tasks__V1__CreateTaskResponse *) resp)->pid;
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

int tr__ctrd_task_start(const tr__ctrd_ctx *cx, const char *id, uint32_t *ret_pid, tr_error **ret_err) {
        Containerd__Services__Tasks__V1__StartRequest req = CONTAINERD__SERVICES__TASKS__V1__START_REQUEST__INIT;
        req.container_id = UNCONST(id);
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(cx, "task.start", SVC_TASKS "Start", &req.base,
                               &containerd__services__tasks__v1__start_response__descriptor, &resp, ret_err);
        if (r < 0)
                return r;
        if (ret_pid)
                *ret_pid = ((Containerd__Services__Tasks__V1__StartResponse *) resp)->pid;
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

int tr__ctrd_task_wait_start(const tr__ctrd_ctx *cx, const char *id, tr__grpc_call **ret_call, tr_error **ret_err) {
        Containerd__Services__Tasks__V1__WaitRequest req = CONTAINERD__SERVICES__TASKS__V1__WAIT_REQUEST__INIT;
        req.container_id = UNCONST(id);
        return tr__grpc_call_start_pb(cx->conn, SVC_TASKS "Wait", &req.base, cx->lease, cx->deadline_ns, ret_call,
                                      ret_err);
}

int tr__ctrd_task_wait_result(const tr__grpc_call *call, uint32_t *ret_status, tr_error **ret_err) {
        int r = tr__grpc_call_result(call, ret_err);
        if (r < 0)
                return r;
        size_t len;
        const uint8_t *m = tr__grpc_call_message(call, 0, &len);
        Containerd__Services__Tasks__V1__WaitResponse *w =
                m ? containerd__services__tasks__v1__wait_response__unpack(NULL, len, m) : NULL;
        if (!w) {
                tr_error_set(ret_err, TR_E_CONTAINER_FAILED, TR_BACKEND_CONTAINERD, "task.wait",
                             "malformed Wait response");
                return -EBADMSG;
        }
        *ret_status = w->exit_status;
        containerd__services__tasks__v1__wait_response__free_unpacked(w, NULL);
        return 0;
}

int tr__ctrd_task_kill(const tr__ctrd_ctx *cx, const char *id, int signo, bool all, tr_error **ret_err) {
        Containerd__Services__Tasks__V1__KillRequest req = CONTAINERD__SERVICES__TASKS__V1__KILL_REQUEST__INIT;
        req.container_id = UNCONST(id);
        req.signal = (uint32_t) signo;
        req.all = all;
        return tr__ctrd_unary(cx, "task.kill", SVC_TASKS "Kill", &req.base, NULL, NULL, ret_err);
}

int tr__ctrd_task_close_stdin_start(const tr__ctrd_ctx *cx, const char *id, tr__grpc_call **ret_call,
                                    tr_error **ret_err) {
        Containerd__Services__Tasks__V1__CloseIORequest req = CONTAINERD__SERVICES__TASKS__V1__CLOSE_IOREQUEST__INIT;
        req.container_id = UNCONST(id);
        req.stdin = true;
        return tr__grpc_call_start_pb(cx->conn, SVC_TASKS "CloseIO", &req.base, cx->lease, cx->deadline_ns, ret_call,
                                      ret_err);
}

int tr__ctrd_task_delete(const tr__ctrd_ctx *cx, const char *id, uint32_t *ret_status, tr_error **ret_err) {
        Containerd__Services__Tasks__V1__DeleteTaskRequest req =
                CONTAINERD__SERVICES__TASKS__V1__DELETE_TASK_REQUEST__INIT;
        req.container_id = UNCONST(id);
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(cx, "task.delete", SVC_TASKS "Delete", &req.base,
                               &containerd__services__tasks__v1__delete_response__descriptor, &resp, ret_err);
        if (r < 0)
                return r;
        if (ret_status)
                *ret_status = ((Containerd__Services__Tasks__V1__DeleteResponse *) resp)->exit_status;
        protobuf_c_message_free_unpacked(resp, NULL);
        return 0;
}

int tr__ctrd_task_list(const tr__ctrd_ctx *cx, tr__ctrd_items *ret, tr_error **ret_err) {
        Containerd__Services__Tasks__V1__ListTasksRequest req =
                CONTAINERD__SERVICES__TASKS__V1__LIST_TASKS_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(cx, "task.list", SVC_TASKS "List", &req.base,
                               &containerd__services__tasks__v1__list_tasks_response__descriptor, &resp, ret_err);
        if (r < 0)
                return r;
        Containerd__Services__Tasks__V1__ListTasksResponse *lr = (void *) resp;
        tr__ctrd_items l = { 0 };
        for (size_t i = 0; i < lr->n_tasks && r >= 0; i++) {
                /* The task's id is its container's; container_id is often empty. */
                const char *id = lr->tasks[i]->container_id && lr->tasks[i]->container_id[0]
                                         ? lr->tasks[i]->container_id
                                         : lr->tasks[i]->id;
                r = tr__ctrd_items_push(&l, id, NULL, 0);
                if (r >= 0)
                        l.items[l.n - 1].status = (int) lr->tasks[i]->status;
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        if (r < 0) {
                tr__ctrd_items_done(&l);
                return tr__ctrd_oom(ret_err, "task.list");
        }
        *ret = l;
        return 0;
}

/* ---- leases ------------------------------------------------------------ */

int tr__ctrd_lease_create(const tr__ctrd_ctx *cx, const char *id, const char *const *labels, tr_error **ret_err) {
        Containerd__Services__Leases__V1__CreateRequest req = CONTAINERD__SERVICES__LEASES__V1__CREATE_REQUEST__INIT;
        _cleanup_(tr__ctrd_kv_list_done) kv_list kv = { 0 };
        if (tr__ctrd_kv_list_build(&containerd__services__leases__v1__create_request__labels_entry__descriptor, labels,
                                   &kv) < 0)
                return tr__ctrd_oom(ret_err, "lease.create");
        req.id = UNCONST(id);
        req.n_labels = kv.n;
        req.labels = (void *) kv.ptrs;
        return tr__ctrd_unary(cx, "lease.create", SVC_LEASES "Create", &req.base, NULL, NULL, ret_err);
}

int tr__ctrd_lease_delete(const tr__ctrd_ctx *cx, const char *id, bool sync, tr_error **ret_err) {
        Containerd__Services__Leases__V1__DeleteRequest req = CONTAINERD__SERVICES__LEASES__V1__DELETE_REQUEST__INIT;
        req.id = UNCONST(id);
        req.sync = sync;
        return tr__ctrd_unary(cx, "lease.delete", SVC_LEASES "Delete", &req.base, NULL, NULL, ret_err);
}

int tr__ctrd_lease_list(const tr__ctrd_ctx *cx, const char *filter, tr__ctrd_items *ret, tr_error **ret_err) {
        Containerd__Services__Leases__V1__ListRequest req = CONTAINERD__SERVICES__LEASES__V1__LIST_REQUEST__INIT;
        char *filters[1] = { UNCONST(filter) };
        req.n_filters = filter ? 1 : 0;
        req.filters = filters;
        ProtobufCMessage *resp = NULL;
        int r = tr__ctrd_unary(cx, "lease.list", SVC_LEASES "List", &req.base,
                               &containerd__services__leases__v1__list_response__descriptor, &resp, ret_err);
        if (r < 0)
                return r;
        Containerd__Services__Leases__V1__ListResponse *lr = (void *) resp;
        tr__ctrd_items l = { 0 };
        for (size_t i = 0; i < lr->n_leases && r >= 0; i++)
                r = tr__ctrd_items_push(&l, lr->leases[i]->id, (kv_entry **) lr->leases[i]->labels,
                                        lr->leases[i]->n_labels);
        protobuf_c_message_free_unpacked(resp, NULL);
        if (r < 0) {
                tr__ctrd_items_done(&l);
                return tr__ctrd_oom(ret_err, "lease.list");
        }
        *ret = l;
        return 0;
}

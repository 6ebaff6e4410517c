/*
 * handlers.h - every route handler, grouped by the file that defines it.
 * The route table (routes.c) is the only caller.
 */
#ifndef QG_HANDLERS_H
#define QG_HANDLERS_H

#include "http/http.h"

/* h_meta.c: probes, metrics, API description */
void qg_h_health(qg_req *r);
void qg_h_ready(qg_req *r);
void qg_h_metrics(qg_req *r);
void qg_h_openapi(qg_req *r);
void qg_h_docs(qg_req *r);

/* h_auth.c: sign-up, login, refresh, logout, the caller's own account */
void qg_h_signup(qg_req *r);
void qg_h_login(qg_req *r);
void qg_h_refresh(qg_req *r);
void qg_h_logout(qg_req *r);
void qg_h_me(qg_req *r);
void qg_h_me_password(qg_req *r);

/* h_tokens.c: machine API tokens */
void qg_h_tokens_list(qg_req *r);
void qg_h_tokens_create(qg_req *r);
void qg_h_tokens_revoke(qg_req *r);

/* h_users.c: user administration */
void qg_h_users_list(qg_req *r);
void qg_h_users_create(qg_req *r);
void qg_h_users_get(qg_req *r);
void qg_h_users_update(qg_req *r);
void qg_h_users_approve(qg_req *r);
void qg_h_users_delete(qg_req *r);

/* h_admin.c: vault and audit log */
void qg_h_secrets_list(qg_req *r);
void qg_h_secrets_put(qg_req *r);
void qg_h_secrets_delete(qg_req *r);
void qg_h_audit_list(qg_req *r);

/* h_datasets.c */
void qg_h_strategies_list(qg_req *r);
void qg_h_datasets_list(qg_req *r);
void qg_h_datasets_create(qg_req *r);
void qg_h_datasets_get(qg_req *r);
void qg_h_datasets_delete(qg_req *r);
void qg_h_datasets_candles(qg_req *r);

/* h_backtests.c */
void qg_h_backtests_list(qg_req *r);
void qg_h_backtests_create(qg_req *r);
void qg_h_backtests_get(qg_req *r);
void qg_h_backtests_delete(qg_req *r);
void qg_h_backtests_events(qg_req *r);

/* h_openai.c: the OpenAI-compatible endpoint */
void qg_h_openai_chat(qg_req *r);
void qg_h_openai_models(qg_req *r);
void qg_h_openai_model(qg_req *r);

/* h_prompts.c: prompt templates (admin) */
void qg_h_prompts_list(qg_req *r);
void qg_h_prompts_get(qg_req *r);
void qg_h_prompts_version(qg_req *r);
void qg_h_prompts_put(qg_req *r);
void qg_h_prompts_preview(qg_req *r);
void qg_h_prompts_rollback(qg_req *r);

/* h_ai_admin.c: named models and deployments of the AI layer */
void qg_h_ai_models_list(qg_req *r);
void qg_h_ai_models_create(qg_req *r);
void qg_h_ai_models_put(qg_req *r);
void qg_h_ai_models_delete(qg_req *r);
void qg_h_ai_deployments_list(qg_req *r);
void qg_h_ai_deployments_create(qg_req *r);
void qg_h_ai_deployments_update(qg_req *r);
void qg_h_ai_deployments_delete(qg_req *r);

/* h_usage.c: AI usage and budgets */
void qg_h_usage(qg_req *r);
void qg_h_budgets_list(qg_req *r);
void qg_h_budgets_create(qg_req *r);
void qg_h_budgets_delete(qg_req *r);

/* h_ai_runs.c: the stored steps of a tool-calling run */
void qg_h_ai_runs_get(qg_req *r);

/* h_memory.c: the caller's memories, collections, working memory */
void qg_h_memory_search(qg_req *r);
void qg_h_memory_search_post(qg_req *r);
void qg_h_memory_add(qg_req *r);
void qg_h_memory_list(qg_req *r);
void qg_h_memory_get(qg_req *r);
void qg_h_memory_delete(qg_req *r);
void qg_h_memory_forget_where(qg_req *r);
void qg_h_memory_collections(qg_req *r);
void qg_h_memory_collections_create(qg_req *r);
void qg_h_memory_working_put(qg_req *r);
void qg_h_memory_working_get(qg_req *r);
void qg_h_memory_working_list(qg_req *r);
void qg_h_memory_working_delete(qg_req *r);
void qg_h_memory_working_clear(qg_req *r);

/* h_docs.c: the documents index (upload, search with citations, list, remove) */
void qg_h_documents_create(qg_req *r);
void qg_h_documents_search(qg_req *r);
void qg_h_documents_list(qg_req *r);
void qg_h_documents_delete(qg_req *r);

/* ---- signals: webhook ingest (h_webhook.c) ---- */
void qg_h_webhook_receive(qg_req *r);

/* ---- signals: pipeline, DLQ, outcomes, stats, stream (h_signals.c) ---- */
void qg_h_signals_list(qg_req *r);
void qg_h_signals_get(qg_req *r);
void qg_h_signals_outcome(qg_req *r);
void qg_h_signals_stats(qg_req *r);
void qg_h_signals_stream(qg_req *r);
void qg_h_signals_status(qg_req *r);
void qg_h_signals_pause(qg_req *r);
void qg_h_signals_resume(qg_req *r);
void qg_h_dlq_list(qg_req *r);
void qg_h_dlq_replay(qg_req *r);
void qg_h_dlq_discard(qg_req *r);

/* ---- signals: policies (h_policies.c) ---- */
void qg_h_policies_list(qg_req *r);
void qg_h_policies_get(qg_req *r);
void qg_h_policies_create(qg_req *r);
void qg_h_policies_put(qg_req *r);
void qg_h_policies_delete(qg_req *r);

/* ---- signals: live detector bars (h_bars.c) ---- */
void qg_h_bars_post(qg_req *r);
void qg_h_bars_forget(qg_req *r);

/* ---- signals: Telegram commands (h_telegram.c) ---- */
void qg_h_telegram_command(qg_req *r);

#endif

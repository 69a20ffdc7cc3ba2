#include "server/api/preset_service.h"

#include "common/field_errors.h"
#include "server/api/unary_call.h"

namespace kaito::server {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;


namespace {

v1::ModelInfo ToModelInfo(const presets::ModelPreset& m) {
  v1::ModelInfo info;
  info.set_name(m.name);
  info.set_id(m.id);
  for (const auto& a : m.aliases) info.add_aliases(a);
  info.set_weights(presets::FormatGi(m.weights_bytes));
  info.set_disk(presets::FormatGi(m.disk_bytes));
  info.set_context_length(m.context_length);
  info.set_bytes_per_token(m.bytes_per_token);
  info.set_architecture(m.architecture);
  info.set_quantization(m.quantization);
  info.set_dtype(m.dtype);
  if (m.vllm) info.add_runtimes("vllm");
  if (m.transformers) info.add_runtimes("transformers");
  info.set_distributed(m.distributed);
  info.set_gated(m.gated);
  info.set_deprecated(m.deprecated);
  if (m.tuning) {
    for (const auto& method : m.tuning->methods) info.add_tuning_methods(method);
    info.set_tuning_disk(presets::FormatGi(m.tuning->disk_bytes));
    info.set_tuning_model_size(presets::FormatGi(m.tuning->model_bytes));
  }
  info.set_tool_call_parser(m.tool_call_parser);
  info.set_reasoning_parser(m.reasoning_parser);
  info.set_chat_template(m.chat_template);
  return info;
}

v1::SkuInfo ToSkuInfo(const presets::Sku& s) {
  v1::SkuInfo info;
  info.set_name(s.name);
  info.set_cloud(s.cloud);
  info.set_gpu_model(s.gpu_model);
  info.set_gpu_count(s.gpu_count);
  info.set_gpu_memory(presets::FormatGi(s.gpu_memory_bytes));
  info.set_gpu_memory_per_gpu(presets::FormatGi(s.PerGpuBytes()));
  info.set_nvme(s.nvme);
  info.set_compute_capability(s.compute_capability);
  info.set_retired(s.retired);
  return info;
}

grpc::ServerUnaryReactor* FinishOk(CallbackServerContext* ctx) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace

ServerUnaryReactor* PresetGrpcService::ListModels(CallbackServerContext* ctx,
                                                  const v1::ListModelsRequest*,
                                                  v1::ListModelsResponse* response) {
  if (auto* refused = Refused(auth_, ctx, {Verb::kList, "presets", "", ""})) return refused;
  for (const auto& m : catalog_->models()) *response->add_models() = ToModelInfo(m);
  return FinishOk(ctx);
}

ServerUnaryReactor* PresetGrpcService::GetModel(CallbackServerContext* ctx,
                                                const v1::GetModelRequest* request,
                                                v1::ModelInfo* response) {
  if (auto* refused = Refused(auth_, ctx, {Verb::kGet, "presets", "", ""})) return refused;
  const presets::ModelPreset* m = catalog_->FindModel(request->name());
  auto* reactor = ctx->DefaultReactor();
  if (m == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 "presets \"" + Abbreviate(request->name()) + "\" not found"));
    return reactor;
  }
  *response = ToModelInfo(*m);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

ServerUnaryReactor* PresetGrpcService::ListSkus(CallbackServerContext* ctx,
                                                const v1::ListSkusRequest* request,
                                                v1::ListSkusResponse* response) {
  if (auto* refused = Refused(auth_, ctx, {Verb::kList, "presets", "", ""})) return refused;
  const std::string cloud = request->cloud().empty() ? cloud_ : request->cloud();
  for (const auto& s : catalog_->skus()) {
    if (cloud != "all" && s.cloud != cloud) continue;
    *response->add_skus() = ToSkuInfo(s);
  }
  return FinishOk(ctx);
}

ServerUnaryReactor* PresetGrpcService::GetSku(CallbackServerContext* ctx,
                                              const v1::GetSkuRequest* request,
                                              v1::SkuInfo* response) {
  if (auto* refused = Refused(auth_, ctx, {Verb::kGet, "presets", "", ""})) return refused;
  const std::string cloud = request->cloud().empty() ? cloud_ : request->cloud();
  const presets::Sku* sku = catalog_->FindSku(cloud, request->name());
  auto* reactor = ctx->DefaultReactor();
  if (sku == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 "skus \"" + Abbreviate(request->name()) + "\" not found in " + Abbreviate(cloud)));
    return reactor;
  }
  *response = ToSkuInfo(*sku);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace kaito::server

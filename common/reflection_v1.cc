#include "common/reflection_v1.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <set>

namespace kaito {
namespace {

namespace rv1 = grpc::reflection::v1;
using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;

// One stream: a response per request, in order; each file is sent once per stream, as
// the protocol allows.
class Reactor : public grpc::ServerBidiReactor<rv1::ServerReflectionRequest,
                                               rv1::ServerReflectionResponse> {
 public:
  explicit Reactor(const std::vector<std::string>* services) : services_(services) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    response_.Clear();
    Answer(request_, &response_);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  void Answer(const rv1::ServerReflectionRequest& req, rv1::ServerReflectionResponse* out) {
    const DescriptorPool* pool = DescriptorPool::generated_pool();
    out->set_valid_host(req.host());
    *out->mutable_original_request() = req;
    auto not_found = [&](const std::string& what) {
      out->mutable_error_response()->set_error_code(grpc::StatusCode::NOT_FOUND);
      out->mutable_error_response()->set_error_message(what + " not found");
    };
    switch (req.message_request_case()) {
      case rv1::ServerReflectionRequest::kFileByFilename: {
        const FileDescriptor* file = pool->FindFileByName(req.file_by_filename());
        if (file == nullptr) return not_found("file " + req.file_by_filename());
        return AddFiles(file, out);
      }
      case rv1::ServerReflectionRequest::kFileContainingSymbol: {
        const FileDescriptor* file = pool->FindFileContainingSymbol(req.file_containing_symbol());
        if (file == nullptr) return not_found("symbol " + req.file_containing_symbol());
        return AddFiles(file, out);
      }
      case rv1::ServerReflectionRequest::kFileContainingExtension: {
        const auto& ext = req.file_containing_extension();
        const auto* type = pool->FindMessageTypeByName(ext.containing_type());
        const auto* field =
            type ? pool->FindExtensionByNumber(type, ext.extension_number()) : nullptr;
        if (field == nullptr) return not_found("extension");
        return AddFiles(field->file(), out);
      }
      case rv1::ServerReflectionRequest::kAllExtensionNumbersOfType: {
        const auto* type = pool->FindMessageTypeByName(req.all_extension_numbers_of_type());
        if (type == nullptr) return not_found("type " + req.all_extension_numbers_of_type());
        std::vector<const google::protobuf::FieldDescriptor*> extensions;
        pool->FindAllExtensions(type, &extensions);
        auto* numbers = out->mutable_all_extension_numbers_response();
        numbers->set_base_type_name(type->full_name());
        for (const auto* e : extensions) numbers->add_extension_number(e->number());
        return;
      }
      case rv1::ServerReflectionRequest::kListServices:
        for (const std::string& name : *services_) {
          out->mutable_list_services_response()->add_service()->set_name(name);
        }
        return;
      case rv1::ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
        out->mutable_error_response()->set_error_code(grpc::StatusCode::INVALID_ARGUMENT);
        out->mutable_error_response()->set_error_message("no request set");
        return;
    }
  }

  // `file` and what it imports, transitively, minus what this stream already sent.
  void AddFiles(const FileDescriptor* file, rv1::ServerReflectionResponse* out) {
    std::vector<const FileDescriptor*> stack = {file};
    auto* files = out->mutable_file_descriptor_response();
    while (!stack.empty()) {
      const FileDescriptor* f = stack.back();
      stack.pop_back();
      if (!sent_.insert(f->name()).second) continue;
      google::protobuf::FileDescriptorProto proto;
      f->CopyTo(&proto);
      proto.SerializeToString(files->add_file_descriptor_proto());
      for (int i = 0; i < f->dependency_count(); ++i) stack.push_back(f->dependency(i));
    }
  }

  const std::vector<std::string>* services_;
  rv1::ServerReflectionRequest request_;
  rv1::ServerReflectionResponse response_;
  std::set<std::string> sent_;
};

}  // namespace

grpc::ServerBidiReactor<rv1::ServerReflectionRequest, rv1::ServerReflectionResponse>*
ReflectionV1Service::ServerReflectionInfo(grpc::CallbackServerContext*) {
  return new Reactor(&services_);
}

}  // namespace kaito

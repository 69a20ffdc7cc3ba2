#include "tools/kaitoctl/jsonpath.h"

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kaito::ctl {
namespace jsonpath_internal {

struct Path;

// One side of a filter's comparison: a path (from `@` or `$`) or a literal value.
struct Operand {
  std::shared_ptr<const Path> path;  // Null for a literal.
  Json literal;
};

// `[?(left)]` (existence) or `[?(left op right)]`.
struct Filter {
  Operand left;
  std::string op;  // Empty: `left` selects something.
  Operand right;
};

struct Step {
  enum class Kind { kNames, kWildcard, kDescendants, kIndexes, kSlice, kFilter };
  Kind kind = Kind::kNames;
  std::vector<std::string> names;  // kNames: one or more keys.
  std::vector<int64_t> indexes;    // kIndexes.
  std::optional<int64_t> start;    // kSlice: Python's semantics, step > 0.
  std::optional<int64_t> end;
  int64_t stride = 1;
  std::shared_ptr<const Filter> filter;  // kFilter.
};

struct Path {
  bool from_root = false;  // `$`; otherwise relative to the current value (`@`, `.`).
  std::vector<Step> steps;
};

struct Node {
  enum class Kind { kText, kPath, kRange };
  Kind kind = Kind::kText;
  std::string text;
  Path path;
  std::vector<Node> body;  // kRange.
};

struct Program {
  std::string text;
  std::vector<Node> nodes;
};

namespace {

bool IsNameDelimiter(char c) {
  return c == '.' || c == '[' || c == ']' || c == '(' || c == ')' || c == ',' || c == '=' ||
         c == '!' || c == '<' || c == '>' || c == '"' || c == '\'' || c == '{' || c == '}' ||
         std::isspace(static_cast<unsigned char>(c));
}

// Parses one template. Positions in errors are 1-based characters of the whole template.
class Parser {
 public:
  explicit Parser(absl::string_view text) : text_(text) {}

  absl::StatusOr<std::vector<Node>> ParseTemplate() {
    std::vector<Node> top;
    std::vector<Node> open_ranges;
    auto target = [&]() -> std::vector<Node>& { return Target(top, open_ranges); };
    std::string literal;
    while (pos_ < text_.size()) {
      if (text_[pos_] != '{') {
        literal += text_[pos_++];
        continue;
      }
      if (!literal.empty()) target().push_back(TextNode(std::move(literal)));
      literal.clear();
      const size_t open = pos_;
      const size_t close = FindActionEnd(open + 1);
      if (close == absl::string_view::npos) return Error("unclosed \"{\"", open);
      absl::Status s = ParseAction(open + 1, close, top, open_ranges);
      if (!s.ok()) return s;
      pos_ = close + 1;
    }
    if (!literal.empty()) target().push_back(TextNode(std::move(literal)));
    if (!open_ranges.empty()) return Error("\"{range}\" without \"{end}\"", text_.size());
    return top;
  }

 private:
  // Where the next node goes: the innermost open range's body, or the top level.
  static std::vector<Node>& Target(std::vector<Node>& top, std::vector<Node>& open_ranges) {
    return open_ranges.empty() ? top : open_ranges.back().body;
  }

  static Node TextNode(std::string text) {
    Node n;
    n.kind = Node::Kind::kText;
    n.text = std::move(text);
    return n;
  }

  absl::Status Error(absl::string_view problem, size_t at) const {
    return absl::InvalidArgumentError(
        absl::StrCat("jsonpath template \"", text_, "\": ", problem, " at character ", at + 1));
  }

  // The `}` that closes the action starting at `from`, skipping quoted strings.
  size_t FindActionEnd(size_t from) const {
    char quote = 0;
    for (size_t i = from; i < text_.size(); ++i) {
      const char c = text_[i];
      if (quote != 0) {
        if (c == '\\') {
          ++i;
        } else if (c == quote) {
          quote = 0;
        }
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '}') {
        return i;
      }
    }
    return absl::string_view::npos;
  }

  void SkipSpaces(size_t end) {
    while (pos_ < end && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }

  bool AtKeyword(absl::string_view word, size_t end) const {
    if (text_.substr(pos_, word.size()) != word) return false;
    const size_t after = pos_ + word.size();
    return after == end || std::isspace(static_cast<unsigned char>(text_[after]));
  }

  // The action between `begin` and `end` (the braces excluded): `range PATH`, `end`, a
  // quoted literal or a path.
  absl::Status ParseAction(size_t begin, size_t end, std::vector<Node>& top,
                           std::vector<Node>& open_ranges) {
    pos_ = begin;
    SkipSpaces(end);
    if (pos_ == end) return Error("empty action \"{}\"", begin - 1);
    if (AtKeyword("end", end)) {
      pos_ += 3;
      SkipSpaces(end);
      if (pos_ != end) return Error("unexpected text after \"end\"", pos_);
      if (open_ranges.empty()) return Error("\"{end}\" without \"{range}\"", begin - 1);
      Node range = std::move(open_ranges.back());
      open_ranges.pop_back();
      Target(top, open_ranges).push_back(std::move(range));
      return absl::OkStatus();
    }
    if (AtKeyword("range", end)) {
      pos_ += 5;
      SkipSpaces(end);
      if (pos_ == end) return Error("\"range\" needs a path", pos_);
      Node range;
      range.kind = Node::Kind::kRange;
      absl::StatusOr<Path> path = ParseWholePath(end);
      if (!path.ok()) return path.status();
      range.path = std::move(*path);
      open_ranges.push_back(std::move(range));
      return absl::OkStatus();
    }
    if (text_[pos_] == '"' || text_[pos_] == '\'') {
      absl::StatusOr<std::string> literal = ParseQuoted(end);
      if (!literal.ok()) return literal.status();
      SkipSpaces(end);
      if (pos_ != end) return Error("unexpected text after a quoted string", pos_);
      Target(top, open_ranges).push_back(TextNode(std::move(*literal)));
      return absl::OkStatus();
    }
    absl::StatusOr<Path> path = ParseWholePath(end);
    if (!path.ok()) return path.status();
    Node node;
    node.kind = Node::Kind::kPath;
    node.path = std::move(*path);
    Target(top, open_ranges).push_back(std::move(node));
    return absl::OkStatus();
  }

  // A path that must fill the action up to `end`.
  absl::StatusOr<Path> ParseWholePath(size_t end) {
    const char first = text_[pos_];
    if (first != '.' && first != '[' && first != '$' && first != '@') {
      return Error(absl::StrCat("unexpected \"", std::string(1, first),
                                "\" (a path starts with \".\", \"$\" or \"@\")"),
                   pos_);
    }
    absl::StatusOr<Path> path = ParsePath(end);
    if (!path.ok()) return path;
    SkipSpaces(end);
    if (pos_ != end) {
      return Error(absl::StrCat("unexpected \"", std::string(1, text_[pos_]), "\""), pos_);
    }
    return path;
  }

  // `$`/`@` and the steps after it, up to the first character that cannot continue a path.
  absl::StatusOr<Path> ParsePath(size_t end) {
    Path path;
    if (text_[pos_] == '$') {
      path.from_root = true;
      ++pos_;
    } else if (text_[pos_] == '@') {
      ++pos_;
    }
    while (pos_ < end) {
      const char c = text_[pos_];
      absl::Status s;
      if (c == '.') {
        s = ParseDotStep(end, path);
      } else if (c == '[') {
        s = ParseBracket(end, path);
      } else {
        break;
      }
      if (!s.ok()) return s;
    }
    return path;
  }

  // `.name`, `.*`, `..name`, `..*`, `..[...]`.
  absl::Status ParseDotStep(size_t end, Path& path) {
    const size_t dot = pos_++;
    if (pos_ < end && text_[pos_] == '.') {
      ++pos_;
      Step descend;
      descend.kind = Step::Kind::kDescendants;
      path.steps.push_back(std::move(descend));
      if (pos_ < end && text_[pos_] == '[') return absl::OkStatus();
    }
    if (pos_ < end && text_[pos_] == '*') {
      ++pos_;
      Step all;
      all.kind = Step::Kind::kWildcard;
      path.steps.push_back(std::move(all));
      return absl::OkStatus();
    }
    if (pos_ < end && text_[pos_] == '[') return absl::OkStatus();  // `.[0]` reads as `[0]`.
    std::string name;
    while (pos_ < end && !IsNameDelimiter(text_[pos_])) {
      if (text_[pos_] == '\\' && pos_ + 1 < end) ++pos_;
      name += text_[pos_++];
    }
    if (name.empty()) {
      // A `.` that ends the path (`{.}`, `@.x == .`) is the current value itself.
      const bool after_descent =
          !path.steps.empty() && path.steps.back().kind == Step::Kind::kDescendants;
      const bool path_ends = pos_ >= end || std::isspace(static_cast<unsigned char>(text_[pos_])) ||
                             text_[pos_] == ')' || IsComparison(pos_);
      if (path_ends && !after_descent) return absl::OkStatus();
      return Error("expected a field name after \".\"", dot);
    }
    Step step;
    step.kind = Step::Kind::kNames;
    step.names.push_back(std::move(name));
    path.steps.push_back(std::move(step));
    return absl::OkStatus();
  }

  bool IsComparison(size_t at) const {
    const char c = text_[at];
    return c == '=' || c == '!' || c == '<' || c == '>';
  }

  // `[*]`, `[?(...)]`, `['a','b']`, `[1]`, `[0,2]`, `[1:3:1]`.
  absl::Status ParseBracket(size_t end, Path& path) {
    const size_t open = pos_++;
    const size_t close = FindBracketEnd(open + 1, end);
    if (close == absl::string_view::npos) return Error("unclosed \"[\"", open);
    SkipSpaces(close);
    if (pos_ == close) return Error("empty \"[]\"", open);
    absl::Status s;
    if (text_[pos_] == '*') {
      ++pos_;
      Step all;
      all.kind = Step::Kind::kWildcard;
      path.steps.push_back(std::move(all));
    } else if (text_[pos_] == '?') {
      s = ParseFilter(close, path);
    } else if (text_[pos_] == '"' || text_[pos_] == '\'') {
      s = ParseQuotedNames(close, path);
    } else {
      s = ParseIndexes(close, path);
    }
    if (!s.ok()) return s;
    SkipSpaces(close);
    if (pos_ != close) {
      return Error(absl::StrCat("unexpected \"", std::string(1, text_[pos_]), "\" in \"[]\""),
                   pos_);
    }
    pos_ = close + 1;
    return absl::OkStatus();
  }

  // The `]` that closes the bracket starting at `from`, skipping quotes and nested brackets.
  size_t FindBracketEnd(size_t from, size_t end) const {
    char quote = 0;
    int depth = 0;
    for (size_t i = from; i < end; ++i) {
      const char c = text_[i];
      if (quote != 0) {
        if (c == '\\') {
          ++i;
        } else if (c == quote) {
          quote = 0;
        }
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '[') {
        ++depth;
      } else if (c == ']') {
        if (depth == 0) return i;
        --depth;
      }
    }
    return absl::string_view::npos;
  }

  absl::Status ParseQuotedNames(size_t close, Path& path) {
    Step step;
    step.kind = Step::Kind::kNames;
    for (;;) {
      SkipSpaces(close);
      if (pos_ >= close || (text_[pos_] != '"' && text_[pos_] != '\'')) {
        return Error("expected a quoted field name", pos_);
      }
      absl::StatusOr<std::string> name = ParseQuoted(close);
      if (!name.ok()) return name.status();
      step.names.push_back(std::move(*name));
      SkipSpaces(close);
      if (pos_ < close && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      break;
    }
    path.steps.push_back(std::move(step));
    return absl::OkStatus();
  }

  // An optional integer; `present` says whether one was there.
  absl::StatusOr<int64_t> ParseInteger(size_t close, bool* present) {
    const size_t begin = pos_;
    if (pos_ < close && (text_[pos_] == '-' || text_[pos_] == '+')) ++pos_;
    while (pos_ < close && std::isdigit(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    *present = pos_ > begin;
    if (!*present) return 0;
    int64_t value = 0;
    if (!absl::SimpleAtoi(text_.substr(begin, pos_ - begin), &value)) {
      return Error("invalid array index", begin);
    }
    return value;
  }

  absl::Status ParseIndexes(size_t close, Path& path) {
    const size_t begin = pos_;
    bool present = false;
    absl::StatusOr<int64_t> first = ParseInteger(close, &present);
    if (!first.ok()) return first.status();
    SkipSpaces(close);
    if (pos_ < close && text_[pos_] == ':') return ParseSlice(close, present, *first, path);
    if (!present) return Error("expected an array index, a slice, \"*\" or a filter", begin);
    Step step;
    step.kind = Step::Kind::kIndexes;
    step.indexes.push_back(*first);
    while (pos_ < close && text_[pos_] == ',') {
      ++pos_;
      SkipSpaces(close);
      const size_t at = pos_;
      absl::StatusOr<int64_t> next = ParseInteger(close, &present);
      if (!next.ok()) return next.status();
      if (!present) return Error("expected an array index after \",\"", at);
      step.indexes.push_back(*next);
      SkipSpaces(close);
    }
    path.steps.push_back(std::move(step));
    return absl::OkStatus();
  }

  absl::Status ParseSlice(size_t close, bool has_start, int64_t start, Path& path) {
    Step step;
    step.kind = Step::Kind::kSlice;
    if (has_start) step.start = start;
    ++pos_;  // The first ':'.
    SkipSpaces(close);
    bool present = false;
    absl::StatusOr<int64_t> end = ParseInteger(close, &present);
    if (!end.ok()) return end.status();
    if (present) step.end = *end;
    SkipSpaces(close);
    if (pos_ < close && text_[pos_] == ':') {
      ++pos_;
      SkipSpaces(close);
      const size_t at = pos_;
      absl::StatusOr<int64_t> stride = ParseInteger(close, &present);
      if (!stride.ok()) return stride.status();
      if (present) {
        if (*stride <= 0) return Error("a slice's step must be positive", at);
        step.stride = *stride;
      }
    }
    path.steps.push_back(std::move(step));
    return absl::OkStatus();
  }

  // `?(@.x)` or `?(@.x OP operand)`, up to `close` (the bracket's `]`).
  absl::Status ParseFilter(size_t close, Path& path) {
    const size_t question = pos_++;
    SkipSpaces(close);
    if (pos_ >= close || text_[pos_] != '(') return Error("expected \"(\" after \"?\"", pos_);
    const size_t paren_close = text_.find_last_of(')', close);
    if (paren_close == absl::string_view::npos || paren_close < pos_) {
      return Error("unclosed \"(\" in a filter", pos_);
    }
    ++pos_;
    auto filter = std::make_shared<Filter>();
    SkipSpaces(paren_close);
    absl::StatusOr<Operand> left = ParseOperand(paren_close);
    if (!left.ok()) return left.status();
    filter->left = std::move(*left);
    SkipSpaces(paren_close);
    if (pos_ < paren_close) {
      const size_t op_at = pos_;
      for (absl::string_view op : {"==", "!=", "<=", ">=", "<", ">"}) {
        if (text_.substr(pos_, op.size()) == op) {
          filter->op = std::string(op);
          pos_ += op.size();
          break;
        }
      }
      if (filter->op.empty()) return Error("expected ==, !=, <, <=, > or >= in a filter", op_at);
      SkipSpaces(paren_close);
      absl::StatusOr<Operand> right = ParseOperand(paren_close);
      if (!right.ok()) return right.status();
      filter->right = std::move(*right);
      SkipSpaces(paren_close);
    }
    if (pos_ != paren_close) return Error("unexpected text in a filter", pos_);
    if (filter->left.path == nullptr && filter->op.empty()) {
      return Error("a filter tests a path such as @.name", question);
    }
    pos_ = paren_close + 1;
    Step step;
    step.kind = Step::Kind::kFilter;
    step.filter = std::move(filter);
    path.steps.push_back(std::move(step));
    return absl::OkStatus();
  }

  absl::StatusOr<Operand> ParseOperand(size_t end) {
    Operand operand;
    if (pos_ >= end) return Error("expected a path or a value", pos_);
    const char c = text_[pos_];
    if (c == '@' || c == '$') {
      absl::StatusOr<Path> path = ParsePath(end);
      if (!path.ok()) return path.status();
      operand.path = std::make_shared<const Path>(std::move(*path));
      return operand;
    }
    if (c == '"' || c == '\'') {
      absl::StatusOr<std::string> text = ParseQuoted(end);
      if (!text.ok()) return text.status();
      operand.literal = std::move(*text);
      return operand;
    }
    const size_t begin = pos_;
    auto in_number = [](char ch) {
      return std::isdigit(static_cast<unsigned char>(ch)) || ch == '-' || ch == '+' || ch == '.' ||
             ch == 'e' || ch == 'E';
    };
    const bool number_like = std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+';
    while (pos_ < end && (number_like ? in_number(text_[pos_]) : !IsNameDelimiter(text_[pos_]))) {
      ++pos_;
    }
    const absl::string_view word = text_.substr(begin, pos_ - begin);
    if (word == "true" || word == "false") {
      operand.literal = word == "true";
      return operand;
    }
    if (word == "null") return operand;  // `literal` is null already.
    int64_t integer = 0;
    double number = 0;
    if (absl::SimpleAtoi(word, &integer)) {
      operand.literal = integer;
    } else if (!word.empty() && absl::SimpleAtod(word, &number)) {
      operand.literal = number;
    } else {
      return Error("expected a path, a quoted string, a number, true, false or null", begin);
    }
    return operand;
  }

  // A string in single or double quotes at `pos_`, its escapes resolved.
  absl::StatusOr<std::string> ParseQuoted(size_t end) {
    const size_t open = pos_;
    const char quote = text_[pos_++];
    std::string out;
    while (pos_ < end && text_[pos_] != quote) {
      char c = text_[pos_++];
      if (c == '\\') {
        if (pos_ >= end) break;
        const char e = text_[pos_++];
        switch (e) {
          case 'n':
            c = '\n';
            break;
          case 't':
            c = '\t';
            break;
          case 'r':
            c = '\r';
            break;
          case '\\':
          case '"':
          case '\'':
            c = e;
            break;
          default:
            return Error(absl::StrCat("unknown escape \"\\", std::string(1, e), "\""), pos_ - 2);
        }
      }
      out += c;
    }
    if (pos_ >= end) return Error("unterminated quoted string", open);
    ++pos_;  // The closing quote.
    return out;
  }

  absl::string_view text_;
  size_t pos_ = 0;
};

using Values = std::vector<const Json*>;

Values ApplyPath(const Path& path, const Json& root, const Json& current);

void AddDescendants(const Json& node, Values& out) {
  out.push_back(&node);
  if (node.is_object() || node.is_array()) {
    for (const Json& child : node) AddDescendants(child, out);
  }
}

void AddChildren(const Json& node, Values& out) {
  if (node.is_object() || node.is_array()) {
    for (const Json& child : node) out.push_back(&child);
  }
}

void AddSlice(const Step& step, const Json& array, Values& out) {
  const int64_t size = static_cast<int64_t>(array.size());
  auto clamp = [size](int64_t i) {
    if (i < 0) i += size;
    return std::max<int64_t>(0, std::min(i, size));
  };
  const int64_t start = step.start ? clamp(*step.start) : 0;
  const int64_t end = step.end ? clamp(*step.end) : size;
  for (int64_t i = start; i < end; i += step.stride) out.push_back(&array[i]);
}

bool Compare(const Json& left, const std::string& op, const Json& right) {
  if (op == "==") return left == right;
  if (op == "!=") return left != right;
  const bool numbers = left.is_number() && right.is_number();
  const bool strings = left.is_string() && right.is_string();
  if (!numbers && !strings) return false;
  if (op == "<") return left < right;
  if (op == "<=") return left <= right;
  if (op == ">") return left > right;
  return left >= right;  // ">="
}

Values OperandValues(const Operand& operand, const Json& root, const Json& current) {
  if (operand.path != nullptr) return ApplyPath(*operand.path, root, current);
  return {&operand.literal};
}

bool Matches(const Filter& filter, const Json& root, const Json& candidate) {
  const Values left = OperandValues(filter.left, root, candidate);
  if (filter.op.empty()) return !left.empty();
  const Values right = OperandValues(filter.right, root, candidate);
  for (const Json* l : left) {
    for (const Json* r : right) {
      if (Compare(*l, filter.op, *r)) return true;
    }
  }
  return false;
}

void ApplyStep(const Step& step, const Json& root, const Json& node, Values& out) {
  switch (step.kind) {
    case Step::Kind::kNames:
      if (!node.is_object()) return;
      for (const std::string& name : step.names) {
        auto it = node.find(name);
        if (it != node.end()) out.push_back(&*it);
      }
      return;
    case Step::Kind::kWildcard:
      AddChildren(node, out);
      return;
    case Step::Kind::kDescendants:
      AddDescendants(node, out);
      return;
    case Step::Kind::kIndexes: {
      if (!node.is_array()) return;
      const int64_t size = static_cast<int64_t>(node.size());
      for (int64_t i : step.indexes) {
        const int64_t at = i < 0 ? i + size : i;
        if (at >= 0 && at < size) out.push_back(&node[at]);
      }
      return;
    }
    case Step::Kind::kSlice:
      if (node.is_array()) AddSlice(step, node, out);
      return;
    case Step::Kind::kFilter: {
      Values children;
      AddChildren(node, children);
      for (const Json* child : children) {
        if (Matches(*step.filter, root, *child)) out.push_back(child);
      }
      return;
    }
  }
}

Values ApplyPath(const Path& path, const Json& root, const Json& current) {
  Values values = {path.from_root ? &root : &current};
  for (const Step& step : path.steps) {
    Values next;
    for (const Json* node : values) ApplyStep(step, root, *node, next);
    values = std::move(next);
  }
  return values;
}

// Runs `nodes` with `current` as `@`; `emit_text` gets literal text, `emit_values` what a
// path selects.
template <typename TextFn, typename ValuesFn>
void Run(const std::vector<Node>& nodes, const Json& root, const Json& current, TextFn& emit_text,
         ValuesFn& emit_values) {
  for (const Node& node : nodes) {
    switch (node.kind) {
      case Node::Kind::kText:
        emit_text(node.text);
        break;
      case Node::Kind::kPath:
        emit_values(ApplyPath(node.path, root, current));
        break;
      case Node::Kind::kRange:
        for (const Json* value : ApplyPath(node.path, root, current)) {
          Run(node.body, root, *value, emit_text, emit_values);
        }
        break;
    }
  }
}

}  // namespace
}  // namespace jsonpath_internal

using jsonpath_internal::Node;
using jsonpath_internal::Program;

JsonPath::JsonPath(std::shared_ptr<const Program> program) : program_(std::move(program)) {}

absl::StatusOr<JsonPath> JsonPath::Parse(absl::string_view text) {
  jsonpath_internal::Parser parser(text);
  absl::StatusOr<std::vector<Node>> nodes = parser.ParseTemplate();
  if (!nodes.ok()) return nodes.status();
  auto program = std::make_shared<Program>();
  program->text = std::string(text);
  program->nodes = std::move(*nodes);
  return JsonPath(std::move(program));
}

absl::StatusOr<JsonPath> JsonPath::ParseExpression(absl::string_view text) {
  absl::string_view path = absl::StripAsciiWhitespace(text);
  if (path.size() >= 2 && path.front() == '{' && path.back() == '}') {
    path = absl::StripAsciiWhitespace(path.substr(1, path.size() - 2));
  }
  if (path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("jsonpath \"", text, "\": empty path"));
  }
  const char first = path.front();
  const bool rooted = first == '.' || first == '[' || first == '$' || first == '@';
  absl::StatusOr<JsonPath> parsed = Parse(absl::StrCat("{", rooted ? "" : ".", path, "}"));
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("jsonpath \"", text, "\": ", parsed.status().message()));
  }
  const auto& nodes = parsed->program_->nodes;
  if (nodes.size() != 1 || nodes[0].kind != Node::Kind::kPath) {
    return absl::InvalidArgumentError(absl::StrCat("jsonpath \"", text, "\": expected one path"));
  }
  auto program = std::make_shared<Program>(*parsed->program_);
  program->text = std::string(text);
  return JsonPath(std::move(program));
}

std::string JsonValueText(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string JsonPath::Execute(const Json& data) const {
  std::string out;
  auto emit_text = [&](const std::string& text) { out += text; };
  auto emit_values = [&](const jsonpath_internal::Values& values) {
    for (size_t i = 0; i < values.size(); ++i) {
      if (i > 0) out += ' ';
      out += JsonValueText(*values[i]);
    }
  };
  jsonpath_internal::Run(program_->nodes, data, data, emit_text, emit_values);
  return out;
}

std::vector<Json> JsonPath::Select(const Json& data) const {
  std::vector<Json> out;
  auto emit_text = [](const std::string&) {};
  auto emit_values = [&](const jsonpath_internal::Values& values) {
    for (const Json* v : values) out.push_back(*v);
  };
  jsonpath_internal::Run(program_->nodes, data, data, emit_text, emit_values);
  return out;
}

const std::string& JsonPath::text() const { return program_->text; }

}  // namespace kaito::ctl

#include "tools/kaitoctl/completion.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace kaito::ctl {
namespace {

std::string Names(const std::vector<CompletionFlag>& flags) {
  std::vector<std::string> names;
  for (const CompletionFlag& f : flags) names.push_back(f.name);
  return absl::StrJoin(names, " ");
}

// A bash `case` pattern of the flags (of `flags`) that take a value: "-o|--output|...".
std::string ValuePattern(const std::vector<CompletionFlag>& flags) {
  std::set<std::string> names;
  for (const CompletionFlag& f : flags) {
    if (f.takes_value) names.insert(f.name);
  }
  return names.empty() ? "--kaitoctl-no-such-flag" : absl::StrJoin(names, "|");
}

// The same flags written with their value after "=": "--server=*|...".
std::string ValueAssignPattern(const std::vector<CompletionFlag>& flags) {
  std::vector<std::string> names;
  for (const CompletionFlag& f : flags) {
    if (f.takes_value) names.push_back(f.name + "=*");
  }
  return names.empty() ? "--kaitoctl-no-such-flag=*" : absl::StrJoin(names, "|");
}

// One variable per verb with its flags, less the global ones (completed with every verb).
std::string VerbFlagVariables(const CompletionSpec& spec) {
  std::set<std::string> global;
  for (const CompletionFlag& f : spec.global_flags) global.insert(f.name);
  std::string out;
  for (const CompletionVerb& verb : spec.verbs) {
    std::vector<CompletionFlag> own;
    for (const CompletionFlag& f : verb.flags) {
      if (!global.count(f.name)) own.push_back(f);
    }
    absl::StrAppend(&out, "_kaitoctl_flags_", absl::StrReplaceAll(verb.name, {{"-", "_"}}), "=\"",
                    Names(own), "\"\n");
  }
  return out;
}

std::vector<CompletionFlag> VerbAndGlobalFlags(const CompletionSpec& spec) {
  std::vector<CompletionFlag> all = spec.global_flags;
  for (const CompletionVerb& verb : spec.verbs) {
    all.insert(all.end(), verb.flags.begin(), verb.flags.end());
  }
  return all;
}

// The completion function. `@GLOBAL_VALUE@`, `@GLOBAL_ASSIGN@` and `@ANY_VALUE@` are case
// patterns of the flags that take a value.
constexpr char kBashFunction[] = R"BASH(
# The words before the cursor: the verb, the resource type, and the global flags to pass on
# when asking the server for names.
__kaitoctl_parse_line() {
  local i word
  _kaitoctl_verb="" _kaitoctl_resource=""
  _kaitoctl_globals=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="${COMP_WORDS[i]}"
    case "$word" in
      @GLOBAL_VALUE@)
        _kaitoctl_globals+=("$word" "${COMP_WORDS[i+1]}")
        ((i++))
        continue ;;
      @GLOBAL_ASSIGN@)
        _kaitoctl_globals+=("$word")
        continue ;;
      @ANY_VALUE@)
        ((i++))
        continue ;;
      -*) continue ;;
    esac
    if [[ -z "$_kaitoctl_verb" ]]; then
      _kaitoctl_verb="$word"
    elif [[ -z "$_kaitoctl_resource" ]]; then
      _kaitoctl_resource="$word"
    fi
  done
}

__kaitoctl_names() {
  local type="$1" line
  local -a names=()
  while IFS= read -r line; do
    [[ -n "$line" ]] && names+=("${line##*/}")
  done < <("${COMP_WORDS[0]}" "${_kaitoctl_globals[@]}" --request-timeout=5s get "$type" \
             -o name 2>/dev/null)
  COMPREPLY=($(compgen -W "${names[*]}" -- "$2"))
}

_kaitoctl() {
  [[ -n "${ZSH_VERSION-}" ]] && setopt localoptions ksharrays
  local cur="${COMP_WORDS[COMP_CWORD]}" prev=""
  ((COMP_CWORD > 0)) && prev="${COMP_WORDS[COMP_CWORD-1]}"
  local _kaitoctl_verb _kaitoctl_resource
  local -a _kaitoctl_globals
  COMPREPLY=()
  __kaitoctl_parse_line
  case "$prev" in
    -o|--output)
      COMPREPLY=($(compgen -W "$_kaitoctl_output_formats" -- "$cur"))
      return 0 ;;
    -f|--filename)
      COMPREPLY=($(compgen -f -- "$cur"))
      type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null
      return 0 ;;
    --for)
      COMPREPLY=($(compgen -W "delete condition= jsonpath=" -- "$cur"))
      return 0 ;;
    @ANY_VALUE@)
      return 0 ;;
  esac
  if [[ -z "$_kaitoctl_verb" ]]; then
    if [[ "$cur" == -* ]]; then
      COMPREPLY=($(compgen -W "$_kaitoctl_global_flags" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$_kaitoctl_verbs" -- "$cur"))
    fi
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    local flags="_kaitoctl_flags_${_kaitoctl_verb//-/_}"
    COMPREPLY=($(compgen -W "${!flags-} $_kaitoctl_global_flags" -- "$cur"))
    return 0
  fi
  case "$_kaitoctl_verb" in
    get|describe|delete|wait|explain)
      if [[ -z "$_kaitoctl_resource" ]]; then
        COMPREPLY=($(compgen -W "$_kaitoctl_resources" -- "$cur"))
      elif [[ "$_kaitoctl_verb" != explain && "$_kaitoctl_resource" != */* ]]; then
        __kaitoctl_names "$_kaitoctl_resource" "$cur"
      fi ;;
    completion)
      [[ -z "$_kaitoctl_resource" ]] && COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
  esac
  return 0
}

complete -o default -F _kaitoctl kaitoctl
)BASH";

std::string BashScript(const CompletionSpec& spec) {
  std::vector<std::string> verbs;
  for (const CompletionVerb& v : spec.verbs) verbs.push_back(v.name);
  std::string out =
      "# bash completion for kaitoctl. Load it with: source <(kaitoctl completion bash)\n";
  absl::StrAppend(&out, "_kaitoctl_verbs=\"", absl::StrJoin(verbs, " "), "\"\n",
                  "_kaitoctl_resources=\"", absl::StrJoin(spec.resource_names, " "), "\"\n",
                  "_kaitoctl_output_formats=\"", absl::StrJoin(spec.output_formats, " "), "\"\n",
                  "_kaitoctl_global_flags=\"", Names(spec.global_flags), "\"\n",
                  VerbFlagVariables(spec));
  out += absl::StrReplaceAll(kBashFunction,
                             {{"@GLOBAL_VALUE@", ValuePattern(spec.global_flags)},
                              {"@GLOBAL_ASSIGN@", ValueAssignPattern(spec.global_flags)},
                              {"@ANY_VALUE@", ValuePattern(VerbAndGlobalFlags(spec))}});
  return out;
}

}  // namespace

absl::StatusOr<std::string> CompletionScript(const CompletionSpec& spec, const std::string& shell) {
  if (shell == "bash") return BashScript(spec);
  if (shell == "zsh") {
    return absl::StrCat(
        "#compdef kaitoctl\n"
        "# zsh completion for kaitoctl, through zsh's bash-completion emulation.\n"
        "# Load it with: source <(kaitoctl completion zsh)\n"
        "if ! (( $+functions[complete] )); then\n"
        "  autoload -U +X bashcompinit && bashcompinit\n"
        "fi\n",
        BashScript(spec));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported shell type \"", shell, "\" (bash or zsh)"));
}

}  // namespace kaito::ctl

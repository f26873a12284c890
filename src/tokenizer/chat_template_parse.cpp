// Lexer and parser of the chat-template Jinja subset. Lexing follows Jinja with the settings
// transformers uses (trim_blocks, lstrip_blocks, keep_trailing_newline=False, "\r\n" → "\n"),
// since those decide every newline of the prompt. The parser is recursive descent with Jinja's
// operator precedence; statements it does not know are errors naming the statement and line.
#include <cstring>
#include <set>

#include "core/error.h"
#include "core/utf8.h"
#include "tokenizer/chat_template_internal.h"

namespace billion::jinja {
namespace {

struct Token {
  enum class Type { Name, Int, Float, String, Op, End };
  Type type;
  std::string text;  // Name/Op text, String value
  int64_t i = 0;
  double f = 0;
  int line = 0;
};

// One piece of the template: literal text, a {{ }} expression or a {% %} statement.
struct Item {
  enum class Kind { Text, Var, Block };
  Kind kind;
  std::string text;
  std::vector<Token> tokens;
  int line = 0;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

class Lexer {
 public:
  Lexer(const std::string& source, const std::string& name) : name_(name) {
    // Jinja reads the source with universal newlines and drops one trailing newline.
    for (size_t k = 0; k < source.size(); ++k) {
      if (source[k] == '\r') {
        src_ += '\n';
        if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
      } else {
        src_ += source[k];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
  }

  std::vector<Item> run() {
    bool line_starting = true;  // the previous tag ended with a newline (or nothing came yet)
    bool strip_next = false;    // the previous tag ended with '-'
    while (pos_ < src_.size()) {
      size_t open = pos_;
      while (open < src_.size()) {
        open = src_.find('{', open);
        if (open == std::string::npos || open + 1 >= src_.size()) {
          open = std::string::npos;
          break;
        }
        char c = src_[open + 1];
        if (c == '{' || c == '%' || c == '#') break;
        ++open;
      }
      std::string text = src_.substr(pos_, open == std::string::npos ? std::string::npos : open - pos_);
      if (strip_next) {
        size_t k = 0;
        while (k < text.size() && is_space(text[k])) ++k;
        text.erase(0, k);
      }
      if (open == std::string::npos) {
        add_text(text);
        break;
      }
      const char kind = src_[open + 1];
      const char sign = open + 2 < src_.size() ? src_[open + 2] : '\0';
      if (sign == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop spaces and tabs between the line start and a block or comment tag.
        size_t line_start = text.rfind('\n');
        line_start = line_start == std::string::npos ? 0 : line_start + 1;
        if (line_start > 0 || line_starting) {
          bool only_ws = line_start < text.size();
          for (size_t k = line_start; k < text.size(); ++k) only_ws &= is_space(text[k]);
          if (only_ws) text.erase(line_start);
        }
      }
      add_text(text);
      line_ += count_lines(pos_, open);
      pos_ = open + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      bool strip_after = false;
      if (kind == '#') {
        size_t close = src_.find("#}", pos_);
        if (close == std::string::npos) fail(where(), "comment is never closed with #}}");
        strip_after = close > pos_ && src_[close - 1] == '-';
        line_ += count_lines(pos_, close);
        pos_ = close + 2;
      } else {
        Item item{kind == '{' ? Item::Kind::Var : Item::Kind::Block, {}, {}, line_};
        strip_after = lex_tag(item, kind == '{' ? '}' : '%');
        items_.push_back(std::move(item));
      }
      strip_next = strip_after;
      // trim_blocks: the first newline after a block or comment tag is removed.
      if (!strip_after && kind != '{' && pos_ < src_.size() && src_[pos_] == '\n') {
        ++pos_;
        ++line_;
        line_starting = true;
      } else {
        line_starting = false;
      }
    }
    return std::move(items_);
  }

 private:
  std::string where() const { return name_ + ":" + std::to_string(line_); }
  int count_lines(size_t from, size_t to) const {
    int n = 0;
    for (size_t k = from; k < to && k < src_.size(); ++k) n += src_[k] == '\n';
    return n;
  }
  void add_text(const std::string& text) {
    if (!text.empty()) items_.push_back({Item::Kind::Text, text, {}, line_});
  }

  // Tokens up to the closing "}}" / "%}" (outside brackets and strings); returns whether the tag
  // ended with '-' (strip the whitespace after it).
  bool lex_tag(Item& item, char closer) {
    int depth = 0;
    for (;;) {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        line_ += src_[pos_] == '\n';
        ++pos_;
      }
      if (pos_ >= src_.size()) fail(name_ + ":" + std::to_string(item.line), "tag is never closed");
      auto at = [&](const char* s) { return src_.compare(pos_, std::strlen(s), s) == 0; };
      const std::string end2 = std::string(1, closer) + "}";
      if (depth == 0) {
        if (at(("-" + end2).c_str())) { pos_ += 3; return true; }
        if (at(("+" + end2).c_str())) { pos_ += 3; return false; }
        if (at(end2.c_str())) { pos_ += 2; return false; }
      }
      char c = src_[pos_];
      Token t{Token::Type::Op, {}, 0, 0, line_};
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t k = pos_;
        while (k < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[k])) || src_[k] == '_')) ++k;
        t.type = Token::Type::Name;
        t.text = src_.substr(pos_, k - pos_);
        pos_ = k;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number(t);
      } else if (c == '\'' || c == '"') {
        lex_string(t, c);
      } else {
        static const char* ops[] = {"//", "**", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ",",
                                    ".", ":", "|", "~", "+", "-", "*", "/", "%", "<", ">", "=", "!"};
        const char* found = nullptr;
        for (const char* op : ops)
          if (at(op)) { found = op; break; }
        if (!found || std::strcmp(found, "!") == 0)
          fail(where(), "unexpected character {} in a template tag", printable(std::string(1, c)));
        t.text = found;
        pos_ += t.text.size();
        if (t.text == "(" || t.text == "[" || t.text == "{") ++depth;
        if (t.text == ")" || t.text == "]" || t.text == "}") --depth;
      }
      item.tokens.push_back(std::move(t));
    }
  }

  void lex_number(Token& t) {
    size_t k = pos_;
    std::string digits;
    auto take_digits = [&] {
      while (k < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[k])) || src_[k] == '_')) {
        if (src_[k] != '_') digits += src_[k];
        ++k;
      }
    };
    take_digits();
    bool is_float = false;
    if (k + 1 < src_.size() && src_[k] == '.' && std::isdigit(static_cast<unsigned char>(src_[k + 1]))) {
      is_float = true;
      digits += src_[k++];
      take_digits();
    }
    if (k < src_.size() && (src_[k] == 'e' || src_[k] == 'E')) {
      size_t e = k + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        is_float = true;
        digits += src_.substr(k, e - k);
        k = e;
        take_digits();
      }
    }
    t.type = is_float ? Token::Type::Float : Token::Type::Int;
    try {
      if (is_float) t.f = std::stod(digits);
      else t.i = std::stoll(digits);
    } catch (const std::exception&) {
      fail(where(), "number {} out of range", digits);
    }
    pos_ = k;
  }

  // Python string-literal escapes (Jinja decodes literals with "unicode-escape").
  void lex_string(Token& t, char quote) {
    t.type = Token::Type::String;
    size_t k = pos_ + 1;
    for (;;) {
      if (k >= src_.size()) fail(where(), "string literal is never closed");
      char c = src_[k];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\' || k + 1 >= src_.size()) {
        t.text += c;
        ++k;
        continue;
      }
      char e = src_[k + 1];
      k += 2;
      auto hex = [&](int n) {
        if (k + n > src_.size()) fail(where(), "truncated \\x/\\u escape in a string literal");
        // Hand-parsed: std::stoul would accept signs and spaces and throw on garbage.
        uint32_t cp = 0;
        for (int i = 0; i < n; ++i) {
          char h = src_[k + i];
          int digit = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
          if (digit < 0) fail(where(), "invalid hex digit in a \\x/\\u escape of a string literal");
          cp = cp * 16 + static_cast<uint32_t>(digit);
        }
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) fail(where(), "escape names no Unicode character");
        k += n;
        append_utf8(t.text, cp);
      };
      switch (e) {
        case 'n': t.text += '\n'; break;
        case 't': t.text += '\t'; break;
        case 'r': t.text += '\r'; break;
        case '\\': t.text += '\\'; break;
        case '\'': t.text += '\''; break;
        case '"': t.text += '"'; break;
        case 'a': t.text += '\a'; break;
        case 'b': t.text += '\b'; break;
        case 'f': t.text += '\f'; break;
        case 'v': t.text += '\v'; break;
        case '0': t.text += '\0'; break;
        case '\n': ++line_; break;  // line continuation
        case 'x': hex(2); break;
        case 'u': hex(4); break;
        case 'U': hex(8); break;
        default: t.text += '\\'; t.text += e;  // Python keeps unknown escapes as written
      }
    }
    pos_ = k + 1;
  }

  std::string src_;
  const std::string& name_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Item> items_;
};

// ---- Parser ------------------------------------------------------------------------------------

class Parser {
 public:
  Parser(std::vector<Item> items, const std::string& name) : items_(std::move(items)), name_(name) {}

  NodeList parse() {
    std::string end;
    NodeList body = parse_body({}, end);
    return body;
  }

 private:
  // Parses nodes until a block statement whose keyword is in `stops`; its keyword goes to
  // `stopped_by` and the token cursor is left after the keyword.
  // Nesting (blocks inside blocks, parentheses, chains of unary + - and not) is limited: the
  // parser and the renderer recurse once per level, and the fuzzer's {{ ++++...+x }} with a
  // few thousand levels overflowed the renderer's stack. Real templates nest a handful deep.
  static constexpr int kMaxNesting = 256;
  struct NestingGuard {
    Parser& parser;
    explicit NestingGuard(Parser& p) : parser(p) {
      if (++parser.nesting_ > kMaxNesting) parser.error(fmt::format("nested more than {} levels deep", kMaxNesting));
    }
    ~NestingGuard() { --parser.nesting_; }
    NestingGuard(const NestingGuard&) = delete;
    NestingGuard& operator=(const NestingGuard&) = delete;
  };

  NodeList parse_body(const std::set<std::string>& stops, std::string& stopped_by) {
    const NestingGuard guard(*this);
    NodeList nodes;
    while (index_ < items_.size()) {
      Item& item = items_[index_];
      if (item.kind == Item::Kind::Text) {
        auto n = make(Node::Kind::Text, item.line);
        n->text = item.text;
        nodes.push_back(std::move(n));
        ++index_;
        continue;
      }
      begin_tag(item);
      if (item.kind == Item::Kind::Var) {
        auto n = make(Node::Kind::Output, item.line);
        n->expr = parse_expression();
        end_tag();
        nodes.push_back(std::move(n));
        continue;
      }
      const Token& kw = peek();
      if (kw.type != Token::Type::Name) error("expected a statement name after {%");
      if (stops.count(kw.text)) {
        stopped_by = kw.text;
        next();
        return nodes;
      }
      nodes.push_back(parse_statement());
    }
    if (!stops.empty()) {
      fail(name_, "template ended inside a block; expected one of {{% {} %}}", fmt::join(stops, " / "));
    }
    return nodes;
  }

  NodePtr parse_statement() {
    const Token kw = next();
    const std::string& k = kw.text;
    if (k == "if") return parse_if(kw.line);
    if (k == "for") return parse_for(kw.line);
    if (k == "set") return parse_set(kw.line);
    if (k == "macro") return parse_macro(kw.line);
    if (k == "break" || k == "continue") {
      auto n = make(k == "break" ? Node::Kind::Break : Node::Kind::Continue, kw.line);
      end_tag();
      return n;
    }
    if (k == "generation") {  // transformers' AssistantTracker: renders its body unchanged
      auto n = make(Node::Kind::Block, kw.line);
      end_tag();
      std::string end;
      n->body = parse_body({"endgeneration"}, end);
      end_tag();
      return n;
    }
    error(fmt::format("unsupported statement {{% {} %}}", k));
  }

  NodePtr parse_if(int line) {
    auto n = make(Node::Kind::If, line);
    ExprPtr cond = parse_expression();
    for (;;) {
      end_tag();
      std::string end;
      NodeList body = parse_body({"elif", "else", "endif"}, end);
      n->branches.emplace_back(std::move(cond), std::move(body));
      if (end == "endif") break;
      if (end == "else") {
        end_tag();
        NodeList else_body = parse_body({"endif"}, end);
        n->branches.emplace_back(nullptr, std::move(else_body));
        break;
      }
      cond = parse_expression();  // elif
    }
    end_tag();
    return n;
  }

  NodePtr parse_for(int line) {
    auto n = make(Node::Kind::For, line);
    do {
      n->targets.push_back(expect_name());
    } while (accept_op(","));
    if (next().text != "in") error("expected 'in' in a for statement");
    n->expr = parse_or();  // no conditional expression here: a trailing "if" filters items
    if (accept_name("if")) n->filter = parse_or();
    if (accept_name("recursive")) error("unsupported: recursive for loops");
    end_tag();
    std::string end;
    n->body = parse_body({"else", "endfor"}, end);
    if (end == "else") {
      end_tag();
      n->else_body = parse_body({"endfor"}, end);
    }
    end_tag();
    return n;
  }

  NodePtr parse_set(int line) {
    std::string target = expect_name();
    std::string attr;
    if (accept_op(".")) attr = expect_name();
    if (peek().type == Token::Type::Op && peek().text == ",") error("unsupported: tuple assignment in set");
    if (accept_op("=")) {
      auto n = make(Node::Kind::Set, line);
      n->text = target;
      n->attr = attr;
      n->expr = parse_expression();
      end_tag();
      return n;
    }
    if (!attr.empty()) error("expected '=' after the set target");
    if (peek().type == Token::Type::Op && peek().text == "|") error("unsupported: filtered set blocks");
    auto n = make(Node::Kind::SetBlock, line);
    n->text = target;
    end_tag();
    std::string end;
    n->body = parse_body({"endset"}, end);
    end_tag();
    return n;
  }

  NodePtr parse_macro(int line) {
    auto n = make(Node::Kind::Macro, line);
    n->text = expect_name();
    expect_op("(");
    if (!accept_op(")")) {
      do {
        n->targets.push_back(expect_name());
        n->defaults.push_back(accept_op("=") ? parse_expression() : nullptr);
      } while (accept_op(","));
      expect_op(")");
    }
    end_tag();
    std::string end;
    n->body = parse_body({"endmacro"}, end);
    if (peek().type == Token::Type::Name) next();  // {% endmacro name %}
    end_tag();
    return n;
  }

  // ---- expressions (Jinja precedence, lowest first) ----

  ExprPtr parse_expression() {
    const NestingGuard guard(*this);
    ExprPtr value = parse_or();
    if (!accept_name("if")) return value;
    auto e = make_expr(Expr::Kind::Cond, value->line);
    e->args.push_back(std::move(value));
    e->args.push_back(parse_or());
    e->args.push_back(accept_name("else") ? parse_expression() : nullptr);
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (accept_name("or")) left = binary(Expr::Kind::Or, "or", std::move(left), parse_and());
    return left;
  }
  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (accept_name("and")) left = binary(Expr::Kind::And, "and", std::move(left), parse_not());
    return left;
  }
  ExprPtr parse_not() {
    const NestingGuard guard(*this);
    if (peek().type == Token::Type::Name && peek().text == "not") {
      int line = next().line;
      auto e = make_expr(Expr::Kind::Not, line);
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr left = parse_math1();
    ExprPtr result;
    for (;;) {
      std::string op;
      bool negated = false;
      const Token& t = peek();
      if (t.type == Token::Type::Op && (t.text == "==" || t.text == "!=" || t.text == "<" ||
                                        t.text == "<=" || t.text == ">" || t.text == ">=")) {
        op = next().text;
      } else if (t.type == Token::Type::Name && t.text == "in") {
        next();
        op = "in";
      } else if (t.type == Token::Type::Name && t.text == "not" && peek(1).type == Token::Type::Name &&
                 peek(1).text == "in") {
        next();
        next();
        op = "in";
        negated = true;
      } else {
        break;
      }
      // Chains (a < b < c) compare neighbours and join with "and", as Python does.
      ExprPtr right = parse_math1();
      auto cmp = make_expr(Expr::Kind::Binary, right->line);
      cmp->name = op;
      cmp->negated = negated;
      cmp->args.push_back(result ? clone_operand(*left) : std::move(left));
      left = std::move(right);
      cmp->args.push_back(clone_operand(*left));
      result = result ? binary(Expr::Kind::And, "and", std::move(result), std::move(cmp)) : std::move(cmp);
    }
    return result ? std::move(result) : std::move(left);
  }
  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (peek_op("+") || peek_op("-")) {
      std::string op = next().text;
      left = binary(Expr::Kind::Binary, op, std::move(left), parse_concat());
    }
    return left;
  }
  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (accept_op("~")) left = binary(Expr::Kind::Binary, "~", std::move(left), parse_math2());
    return left;
  }
  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (peek_op("*") || peek_op("/") || peek_op("//") || peek_op("%")) {
      std::string op = next().text;
      left = binary(Expr::Kind::Binary, op, std::move(left), parse_pow());
    }
    return left;
  }
  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (accept_op("**")) left = binary(Expr::Kind::Binary, "**", std::move(left), parse_unary(true));
    return left;
  }
  ExprPtr parse_unary(bool with_filter) {
    const NestingGuard guard(*this);
    ExprPtr node;
    if (peek_op("-") || peek_op("+")) {
      const Token t = next();
      node = make_expr(Expr::Kind::Unary, t.line);
      node->name = t.text;
      node->args.push_back(parse_unary(false));
    } else {
      node = parse_postfix(parse_primary());
    }
    return with_filter ? parse_filters(std::move(node)) : std::move(node);
  }

  ExprPtr parse_primary() {
    const Token t = next();
    auto e = make_expr(Expr::Kind::Literal, t.line);
    switch (t.type) {
      case Token::Type::Int: e->literal = Value::integer(t.i); return e;
      case Token::Type::Float: e->literal = Value::number(t.f); return e;
      case Token::Type::String: {
        std::string s = t.text;
        while (peek().type == Token::Type::String) s += next().text;  // "a" "b" concatenates
        e->literal = Value::string(s);
        return e;
      }
      case Token::Type::Name:
        if (t.text == "true" || t.text == "True") e->literal = Value::boolean(true);
        else if (t.text == "false" || t.text == "False") e->literal = Value::boolean(false);
        else if (t.text == "none" || t.text == "None") e->literal = Value::none();
        else {
          e->kind = Expr::Kind::Name;
          e->name = t.text;
        }
        return e;
      case Token::Type::Op:
        if (t.text == "(") {
          if (accept_op(")")) {  // empty tuple
            e->kind = Expr::Kind::ListLit;
            e->negated = true;
            return e;
          }
          ExprPtr inner = parse_expression();
          if (!peek_op(",")) {
            expect_op(")");
            return inner;
          }
          e->kind = Expr::Kind::ListLit;  // a tuple: a list that prints as (a, b)
          e->negated = true;
          e->args.push_back(std::move(inner));
          while (accept_op(",") && !peek_op(")")) e->args.push_back(parse_expression());
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          e->kind = Expr::Kind::ListLit;
          while (!accept_op("]")) {
            e->args.push_back(parse_expression());
            if (!accept_op(",")) {
              expect_op("]");
              break;
            }
          }
          return e;
        }
        if (t.text == "{") {
          e->kind = Expr::Kind::DictLit;
          while (!accept_op("}")) {
            e->args.push_back(parse_expression());
            expect_op(":");
            e->args.push_back(parse_expression());
            if (!accept_op(",")) {
              expect_op("}");
              break;
            }
          }
          return e;
        }
        break;
      default: break;
    }
    error(t.type == Token::Type::End ? "unexpected end of tag" : "unexpected '" + t.text + "'");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    for (;;) {
      if (accept_op(".")) {
        const Token t = next();
        auto e = make_expr(Expr::Kind::Attr, t.line);
        if (t.type == Token::Type::Name) {
          e->name = t.text;
        } else if (t.type == Token::Type::Int) {  // foo.0 is foo[0]
          e->kind = Expr::Kind::Index;
          auto lit = make_expr(Expr::Kind::Literal, t.line);
          lit->literal = Value::integer(t.i);
          e->args.push_back(std::move(node));
          e->args.push_back(std::move(lit));
          node = std::move(e);
          continue;
        } else {
          error("expected an attribute name after '.'");
        }
        e->args.push_back(std::move(node));
        node = std::move(e);
      } else if (peek_op("[")) {
        int line = next().line;
        ExprPtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!peek_op(":") && !peek_op("]")) parts[k] = parse_expression();
          if (k < 2 && accept_op(":")) {
            slice = true;
            continue;
          }
          break;
        }
        expect_op("]");
        auto e = make_expr(slice ? Expr::Kind::Slice : Expr::Kind::Index, line);
        e->args.push_back(std::move(node));
        if (!slice && !parts[0]) error("empty subscript []");
        for (int k = 0; k < (slice ? 3 : 1); ++k) e->args.push_back(std::move(parts[k]));
        node = std::move(e);
      } else if (peek_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_call(ExprPtr callee) {
    int line = next().line;  // "("
    auto e = make_expr(Expr::Kind::Call, line);
    e->args.push_back(std::move(callee));
    parse_args(*e);
    return e;
  }

  // After "(": positional and keyword arguments up to ")".
  void parse_args(Expr& e) {
    while (!accept_op(")")) {
      if (peek_op("*") || peek_op("**")) error("unsupported: *args / **kwargs in a call");
      if (peek().type == Token::Type::Name && peek(1).type == Token::Type::Op && peek(1).text == "=") {
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(key, parse_expression());
      } else {
        if (!e.kwargs.empty()) error("positional argument after a keyword argument");
        e.args.push_back(parse_expression());
      }
      if (!accept_op(",")) {
        expect_op(")");
        break;
      }
    }
  }

  ExprPtr parse_filters(ExprPtr node) {
    for (;;) {
      if (accept_op("|")) {
        const Token t = next();
        if (t.type != Token::Type::Name) error("expected a filter name after '|'");
        auto e = make_expr(Expr::Kind::Filter, t.line);
        e->name = t.text;
        e->args.push_back(std::move(node));
        if (accept_op("(")) parse_args(*e);
        node = std::move(e);
      } else if (accept_name("is")) {
        auto e = make_expr(Expr::Kind::Test, peek().line);
        e->negated = accept_name("not");
        const Token t = next();
        if (t.type != Token::Type::Name) error("expected a test name after 'is'");
        e->name = t.text;
        e->args.push_back(std::move(node));
        if (accept_op("(")) {
          parse_args(*e);
        } else if (starts_test_argument()) {  // "is divisibleby 3", "is sameas false"
          e->args.push_back(parse_postfix(parse_primary()));
        }
        node = std::move(e);
      } else if (peek_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  bool starts_test_argument() const {
    const Token& t = peek();
    if (t.type == Token::Type::Int || t.type == Token::Type::Float || t.type == Token::Type::String) return true;
    if (t.type == Token::Type::Op) return t.text == "[" || t.text == "{";
    if (t.type != Token::Type::Name) return false;
    static const std::set<std::string> stop = {"else", "or", "and", "not", "in", "is", "if", "recursive"};
    return !stop.count(t.text);
  }

  // Comparison chains reuse the middle operand; chains are rare, so a deep copy is fine.
  static ExprPtr clone_operand(const Expr& e) {
    auto c = std::make_unique<Expr>();
    c->kind = e.kind;
    c->line = e.line;
    c->literal = e.literal;
    c->name = e.name;
    c->negated = e.negated;
    for (const auto& a : e.args) c->args.push_back(a ? clone_operand(*a) : nullptr);
    for (const auto& [k, v] : e.kwargs) c->kwargs.emplace_back(k, clone_operand(*v));
    return c;
  }

  // ---- token cursor ----

  void begin_tag(Item& item) {
    tokens_ = &item.tokens;
    cursor_ = 0;
    tag_line_ = item.line;
    end_token_ = Token{Token::Type::End, "end of tag", 0, 0, item.line};
  }
  // The current tag must be fully consumed; then move to the next item.
  void end_tag() {
    if (cursor_ < tokens_->size()) error("unexpected '" + peek().text + "'");
    ++index_;
    if (index_ < items_.size() && items_[index_].kind != Item::Kind::Text) begin_tag(items_[index_]);
  }
  const Token& peek(size_t ahead = 0) const {
    return cursor_ + ahead < tokens_->size() ? (*tokens_)[cursor_ + ahead] : end_token_;
  }
  Token next() {
    Token t = peek();
    if (cursor_ < tokens_->size()) ++cursor_;
    return t;
  }
  bool peek_op(const char* op) const { return peek().type == Token::Type::Op && peek().text == op; }
  bool accept_op(const char* op) {
    if (!peek_op(op)) return false;
    next();
    return true;
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) error(fmt::format("expected '{}' but found '{}'", op, peek().text));
  }
  bool accept_name(const char* name) {
    if (peek().type != Token::Type::Name || peek().text != name) return false;
    next();
    return true;
  }
  std::string expect_name() {
    const Token t = next();
    if (t.type != Token::Type::Name) error("expected a name but found '" + t.text + "'");
    return t.text;
  }

  static NodePtr make(Node::Kind kind, int line) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = line;
    return n;
  }
  static ExprPtr make_expr(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  static ExprPtr binary(Expr::Kind kind, const std::string& op, ExprPtr a, ExprPtr b) {
    auto e = make_expr(kind, a->line);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  [[noreturn]] void error(const std::string& message) const {
    fail(name_ + ":" + std::to_string(peek().line ? peek().line : tag_line_), "{}", message);
  }

  std::vector<Item> items_;
  const std::string& name_;
  size_t index_ = 0;
  std::vector<Token>* tokens_ = nullptr;
  size_t cursor_ = 0;
  int tag_line_ = 0;
  int nesting_ = 0;  // NestingGuard
  Token end_token_{Token::Type::End, "end of tag", 0, 0, 0};
};

}  // namespace

NodeList parse_template(const std::string& source, const std::string& source_name) {
  Lexer lexer(source, source_name);
  Parser parser(lexer.run(), source_name);
  return parser.parse();
}

}  // namespace billion::jinja

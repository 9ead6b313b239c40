#version 330 core
// Multiplied into the eyeball's colour by the blend (dst * src): alpha is left alone.
in float v_shade;
out vec4 f_color;

void main() {
    f_color = vec4(vec3(1.0 - v_shade), 1.0);
}
